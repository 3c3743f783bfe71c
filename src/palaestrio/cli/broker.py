"""`broker`: a standalone MDP broker."""

from __future__ import annotations

from typing import NoReturn

import click

from .group import Options, cli

DEFAULT_BROKER_BIND = "tcp://127.0.0.1:5555"


@cli.command("broker")
@click.option(
    "--bind",
    metavar="ENDPOINT",
    help="Endpoint to bind (default: broker_uri of the runtime configuration, else "
    f"{DEFAULT_BROKER_BIND}).",
)
@click.pass_obj
def broker_command(options: Options, bind: str | None) -> NoReturn:
    """Run a standalone MDP broker until SIGINT/SIGTERM."""
    from palaestrio.errors import collapsed_groups
    from palaestrio.mdp import broker

    config = options.config()
    endpoint = bind or config.broker_uri or DEFAULT_BROKER_BIND
    # broker_max_queued_bytes -> --max-queued-bytes, as `palaestrio.mdp.broker` takes it
    bounds = [
        argument
        for name, value in config.broker_limits().items()
        for argument in (f"--{name.removeprefix('broker_').replace('_', '-')}", str(value))
    ]
    # A failed bind leaves trio's nursery as a group: the one ZMQError in it is what the
    # group's error handling turns into one line (exit 2).
    with collapsed_groups():
        broker.main(["--bind", endpoint, *bounds])
    raise SystemExit(0)
