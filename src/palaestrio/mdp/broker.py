"""The MDP/0.1 broker: one ROUTER socket that clients and workers both connect to.

The broker's rules live in `broker_core.BrokerCore`, which does no I/O. This module is
the trio layer: one task owns the socket (trio-notes §1.2a), feeds every message it
receives to the core, sends what the core answers, and calls the core's `tick` when its
deadline comes (heartbeats, worker expiry), all from the same loop.

Run alone: ``python -m palaestrio.mdp.broker --bind tcp://127.0.0.1:5555``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import trio
import zmq

from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.broker_core import DEFAULT_MAX_WAITING_REQUESTS, BrokerCore
from palaestrio.zmq_trio import Socket, open_socket

__all__ = ["DEFAULT_MAX_WAITING_REQUESTS", "main", "private_ipc_endpoint", "serve"]

log = logging.getLogger(__name__)


async def _run(sock: Socket, core: BrokerCore) -> None:
    """Moves frames between `sock` and `core` until cancelled."""
    while True:
        frames: list[bytes] | None = None
        with trio.move_on_at(core.next_deadline()):
            frames = await sock.recv_multipart()
        now = trio.current_time()
        if frames is not None:
            await _send_all(sock, core.receive(frames, now))
        await _send_all(sock, core.tick(now))


async def _send_all(sock: Socket, messages: list[list[bytes]]) -> None:
    for message in messages:
        # A ROUTER does not block a send (it drops what it cannot route), so this saves
        # a trip through the scheduler per message; receiving still checkpoints.
        if not sock.try_send_multipart(message):
            await sock.send_multipart(message)


@contextmanager
def private_ipc_endpoint() -> Iterator[str]:
    """An ipc:// endpoint in a fresh directory only this user can enter; removed after."""
    directory = tempfile.mkdtemp(prefix="palaestrio-")  # mkdtemp makes it mode 0700
    try:
        yield f"ipc://{directory}/broker"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def serve(
    bind: str | None = None,
    *,
    heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL,
    heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS,
    max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Runs a broker until cancelled; reports the bound endpoint once it is bound.

    Args:
        bind: endpoint to bind, e.g. ``tcp://127.0.0.1:*`` (a free port) or
            ``ipc:///path``. None (default) binds ipc in a private temporary directory.
    """
    with private_ipc_endpoint() as default_endpoint:
        async with open_socket(zmq.ROUTER) as sock:
            endpoint = sock.bind(bind or default_endpoint)
            core = BrokerCore(
                heartbeat_interval,
                heartbeat_liveness,
                max_waiting_requests,
                now=trio.current_time(),
            )
            log.debug("broker listening on %s", endpoint)
            task_status.started(endpoint)
            await _run(sock, core)


async def _main(bind: str, interval: float, liveness: int) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(
                lambda task_status: serve(
                    bind,
                    heartbeat_interval=interval,
                    heartbeat_liveness=liveness,
                    task_status=task_status,
                )
            )
            print(f"palaestrio broker listening on {endpoint}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.mdp.broker")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555")
    parser.add_argument("--heartbeat-interval", type=float, default=2.5)
    parser.add_argument("--heartbeat-liveness", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(_main, args.bind, args.heartbeat_interval, args.heartbeat_liveness)
    sys.exit(0)


if __name__ == "__main__":
    main()
