"""A palaestrio echo worker process for the tests, with settable heartbeats.

    python tests/mdp_echo_worker.py --connect ENDPOINT --service NAME [--tag T]
        [--heartbeat-interval S] [--heartbeat-liveness N]

Replies `[tag, *body]`, so a test can tell which worker served a request. Prints
`echo worker ready` once palaestrio's worker has started; SIGTERM/SIGINT end it
cleanly (the worker sends DISCONNECT), exit status 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from functools import partial

import trio

from palaestrio.mdp.worker import serve_worker


async def main(args: argparse.Namespace) -> None:
    tag = args.tag.encode()

    async def handler(body: list[bytes]) -> list[bytes]:
        return [tag, *body]

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve_worker,
                    args.connect,
                    args.service,
                    handler,
                    heartbeat_interval=args.heartbeat_interval,
                    heartbeat_liveness=args.heartbeat_liveness,
                    reconnect_delay=0.05,
                    max_reconnect_delay=0.2,
                )
            )
            print("echo worker ready", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="mdp_echo_worker")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--tag", default="")
    parser.add_argument("--heartbeat-interval", type=float, default=2.5)
    parser.add_argument("--heartbeat-liveness", type=int, default=3)
    trio.run(main, parser.parse_args())
    sys.exit(0)
