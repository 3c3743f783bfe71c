"""`python -m palaestrio.store --uri URI --broker ENDPOINT`: the store service alone.

It owns the runs scheduled through it as executor `--executor-id` (made up if not
given; give the same id to a restarted store to keep its runs), with this process's pid.

Prints "palaestrio store ready" once the broker has been sent READY. SIGINT or SIGTERM
stops it after the write in progress; exit status 0. A store that cannot start (bad URI,
unreachable or missing database) prints the reason and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from functools import partial

import trio

from palaestrio.store.errors import StoreError
from palaestrio.store.ownership import DEFAULT_LEASE_SECONDS
from palaestrio.store.service import serve


async def _main(args: argparse.Namespace) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve,
                    args.uri,
                    args.broker,
                    create=args.create,
                    executor_id=args.executor_id,
                    lease_seconds=args.lease_seconds,
                    heartbeat_interval=args.heartbeat_interval,
                    heartbeat_liveness=args.heartbeat_liveness,
                )
            )
            print("palaestrio store ready", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.store")
    parser.add_argument("--uri", required=True, help="sqlite:///file.db or postgresql://...")
    parser.add_argument("--broker", required=True, help="the MDP broker's endpoint")
    parser.add_argument("--create", action="store_true", help="create the database first")
    parser.add_argument("--executor-id", help="the executor this store serves (default: new)")
    parser.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_SECONDS)
    parser.add_argument("--heartbeat-interval", type=float, default=2.5)
    parser.add_argument("--heartbeat-liveness", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        from setproctitle import setproctitle

        setproctitle("palaestrio[store]")
    except ImportError:
        pass
    try:
        trio.run(_main, args)
    except* StoreError as group:
        for error in group.exceptions:
            print(f"palaestrio store: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
