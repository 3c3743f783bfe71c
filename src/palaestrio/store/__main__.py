"""`python -m palaestrio.store --uri URI --broker ENDPOINT`: the store service alone.

It owns the runs scheduled through it as executor `--executor-id` (made up if not
given; give the same id to a restarted store to keep its runs), registered with
`--executor-pid` (default: this process's pid).

Prints "palaestrio store ready" once the broker has been sent READY. SIGINT or SIGTERM
stops it after the write in progress; exit status 0. SIGUSR1 says the executor is
stopping: a write that fails from then on is not retried. When the store gives up for
good (see `palaestrio.store.service`), it prints "palaestrio store failed: REASON" and
goes on refusing every request with that reason until stopped. A store that cannot
start (bad URI, unreachable or missing database) prints the reason and exits with
status 2. Started by an executor (a lifeline fd in the environment), it dies with it.
"""

from __future__ import annotations

import os

from palaestrio.proctree import LIFELINE_VARIABLE

_TIED = False
if __name__ == "__main__" and os.environ.get(LIFELINE_VARIABLE):
    # First, before the imports that take most of the store's start: an executor that
    # dies meanwhile must not leave the store behind.
    from palaestrio.governor.lifeline import tie

    tie(os.environ[LIFELINE_VARIABLE], what="store")
    _TIED = True

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from functools import partial  # noqa: E402

import trio  # noqa: E402

from palaestrio import curve  # noqa: E402
from palaestrio.store.errors import StoreError  # noqa: E402
from palaestrio.store.ownership import DEFAULT_LEASE_SECONDS  # noqa: E402
from palaestrio.store.service import StoreService, serve  # noqa: E402
from palaestrio.store.write_budget import (  # noqa: E402
    DEFAULT_WRITE_RETRIES,
    DEFAULT_WRITE_RETRY_SECONDS,
    WriteBudget,
)

READY = "palaestrio store ready"
FAILED = "palaestrio store failed: "
START_ERROR = "palaestrio store: "


def _report_failure(reason: str) -> None:
    print(FAILED + " ".join(reason.split()), flush=True)


async def _main(args: argparse.Namespace) -> None:
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
    with trio.open_signal_receiver(*watched) as signals:
        async with trio.open_nursery() as nursery:
            service: StoreService = await nursery.start(
                partial(
                    serve,
                    args.uri,
                    args.broker,
                    create=args.create,
                    executor_id=args.executor_id,
                    executor_pid=args.executor_pid,
                    lease_seconds=args.lease_seconds,
                    heartbeat_interval=args.heartbeat_interval,
                    heartbeat_liveness=args.heartbeat_liveness,
                    budget=WriteBudget(args.write_retries, args.write_retry_seconds),
                    on_failure=_report_failure,
                )
            )
            print(READY, flush=True)
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    service.hurry()
                    continue
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.store")
    parser.add_argument("--uri", required=True, help="sqlite:///file.db or postgresql://...")
    parser.add_argument("--broker", required=True, help="the MDP broker's endpoint")
    parser.add_argument("--create", action="store_true", help="create the database first")
    parser.add_argument("--executor-id", help="the executor this store serves (default: new)")
    parser.add_argument("--executor-pid", type=int, help="its process (default: this one)")
    parser.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_SECONDS)
    parser.add_argument("--heartbeat-interval", type=float, default=2.5)
    parser.add_argument("--heartbeat-liveness", type=int, default=3)
    parser.add_argument("--write-retries", type=int, default=DEFAULT_WRITE_RETRIES)
    parser.add_argument("--write-retry-seconds", type=float, default=DEFAULT_WRITE_RETRY_SECONDS)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    curve.register_from_environment(args.broker)  # keys from an executor with CURVE
    lifeline = os.environ.get(LIFELINE_VARIABLE)
    if lifeline and not _TIED:
        from palaestrio.governor.lifeline import tie

        tie(lifeline, what="store")
    try:
        from setproctitle import setproctitle

        setproctitle("palaestrio[store]")
    except ImportError:
        pass
    try:
        trio.run(_main, args)
    except* StoreError as group:
        for error in group.exceptions:
            print(START_ERROR + str(error), file=sys.stderr, flush=True)
        sys.exit(2)
    # Everything is committed and closed: skip the interpreter's teardown, which the
    # executor's shutdown would wait for (a few tenths of a second).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
