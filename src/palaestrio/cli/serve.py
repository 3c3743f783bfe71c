"""`palaestrio serve`: a long-lived executor with an HTTP API and a web page."""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING

import click

from .group import EXIT_CODES, Options, PalaestrioCommandError, cli, store_option
from .logs import logging_to

if TYPE_CHECKING:
    from hypercorn.config import Sockets

    from palaestrio.config import RuntimeConfig

DEFAULT_BIND = "127.0.0.1:4247"


@cli.command("serve")
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    show_default=True,
    metavar="HOST:PORT",
    help="Where the HTTP server listens (port 0: any free port).",
)
@store_option
@click.option(
    "-p",
    "--parallel",
    type=click.IntRange(min=1),
    help="Runs executing at once (default from the runtime configuration: 1).",
)
@click.option(
    "--no-token",
    is_flag=True,
    help="Serve without a token (only on a loopback address).",
)
@click.pass_context
def serve_command(
    ctx: click.Context, bind: str, store_uri: str | None, parallel: int | None, no_token: bool
) -> None:
    """Run submitted experiment runs and show every run of the store in a browser.

    Every request needs the bearer token printed at start (or given in
    $PALAESTRIO_SERVE_TOKEN); open the printed URL in a browser. ^C or SIGTERM cancels
    the runs in flight, stores them and stops.
    """
    from palaestrio.serve.app import listening_sockets
    from palaestrio.serve.auth import TOKEN_ENV, generate_token, is_loopback_host, parse_bind

    options: Options = ctx.obj
    config = options.config(store_uri=store_uri, parallel_runs=parallel)
    try:
        host, port = parse_bind(bind)
    except ValueError as bad:
        raise PalaestrioCommandError(str(bad)) from None
    token: str | None = os.environ.get(TOKEN_ENV) or generate_token()
    if no_token:
        if not is_loopback_host(host):
            raise PalaestrioCommandError(
                f"refusing to serve on {host} without a token: anyone who reaches it "
                "could run code here (drop --no-token, or bind 127.0.0.1)"
            )
        token = None
    try:
        sockets = listening_sockets(host, port)
    except OSError as problem:
        raise PalaestrioCommandError(f"cannot listen on {bind}: {problem.strerror}") from None
    import trio

    with logging_to(config.logging, options.level()):
        level = logging.getLogger("palaestrio.governor").getEffectiveLevel()
        stopped_by = trio.run(_serve, config, sockets, token, logging.getLevelName(level))
    if stopped_by in EXIT_CODES:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctx.exit(EXIT_CODES[stopped_by])


async def _serve(
    config: RuntimeConfig, sockets: Sockets, token: str | None, governor_level: str
) -> str:
    """Serves until a signal stops it; returns the signal's name."""
    import trio

    from palaestrio.executor import ExecutorInterrupted, open_executor
    from palaestrio.serve.app import build_app, serve
    from palaestrio.serve.events import EventHub
    from palaestrio.store import open_database

    hub = EventHub()
    try:
        async with open_executor(
            config.parallel_runs,
            config.store_uri,
            broker_uri=config.broker_uri,
            on_update=hub.update,
            governor_log_level=governor_level,
            **config.store_limits(),
            **config.broker_limits(),
        ) as executor:
            engine = await trio.to_thread.run_sync(open_database, config.store_uri)
            try:
                async with trio.open_nursery() as nursery:
                    app = build_app(executor, engine, hub, token)
                    urls = await nursery.start(serve, app, sockets)
                    query = f"/?token={token}" if token else "/"
                    for url in urls:
                        click.echo(f"palaestrio serve: {url}{query}")
                    if token:
                        click.echo(f"token: {token}")
            finally:
                engine.dispose()
    except ExecutorInterrupted as interrupted:
        return signal.Signals(interrupted.signum).name
    return "EXITED"
