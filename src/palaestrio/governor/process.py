"""``python -m palaestrio.governor``: the RunGovernor process's entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial

import setproctitle
import trio

from palaestrio import curve
from palaestrio.errors import collapsed_groups
from palaestrio.governor import lifeline
from palaestrio.governor.run import serve_run
from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.protocol import BrokerLost


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.governor")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--governor-id", required=True)
    # Without them, a governor started ahead of its run learns both from the start request.
    parser.add_argument("--instance")
    parser.add_argument("--run-uid")
    parser.add_argument("--heartbeat-interval", type=float, default=mdp.DEFAULT_HEARTBEAT_INTERVAL)
    parser.add_argument("--heartbeat-liveness", type=int, default=mdp.DEFAULT_HEARTBEAT_LIVENESS)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # CURVE keys come in the environment (argv is public) and leave it at once: the
    # simulation's processes must not inherit them.
    curve.register_from_environment(args.broker)
    # `python -m palaestrio.governor` holds the lifeline before importing this module.
    # The executor sets SPT_NOENV: the title then leaves /proc/PID/environ readable.
    setproctitle.setproctitle(f"palaestrio[governor:{args.run_uid or 'ahead'}]")
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        with collapsed_groups():
            trio.run(
                partial(
                    serve_run,
                    args.broker,
                    args.governor_id,
                    args.instance,
                    heartbeat_interval=args.heartbeat_interval,
                    heartbeat_liveness=args.heartbeat_liveness,
                )
            )
    except BrokerLost as lost:
        lifeline.die(f"the executor's broker is gone: {lost}", lifeline.EXIT_PARENT_LOST)
    except BaseException:
        logging.getLogger("palaestrio.governor").exception("the RunGovernor failed")
        lifeline.die("the RunGovernor failed", 1)
    # Everything is stored and reported, every socket closed: skip the interpreter's
    # teardown (module cleanup, zmq context, thread pools), a fifth of a second per run.
    lifeline.kill_descendants()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
