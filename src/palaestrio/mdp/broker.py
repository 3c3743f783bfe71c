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
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio
import zmq

from palaestrio import curve
from palaestrio.curve import CurveServer
from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.broker_core import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_WAITING_BYTES,
    DEFAULT_MAX_WAITING_REQUESTS,
    DEFAULT_REQUEST_EXPIRY,
    BrokerCore,
)
from palaestrio.mdp.drops import DEFAULT_LOG_INTERVAL
from palaestrio.mdp.zap import ZAP_ENDPOINT, serve_zap
from palaestrio.zmq_trio import Socket, open_socket

__all__ = ["DEFAULT_MAX_WAITING_REQUESTS", "main", "private_ipc_endpoint", "serve"]

log = logging.getLogger(__name__)


BATCH = 256
"""Messages handled per scheduler pass while more keep coming."""


async def _run(sock: Socket, core: BrokerCore) -> None:
    """Moves frames between `sock` and `core` until cancelled.

    Each wakeup drains every message that is there (up to `BATCH`, then other tasks get
    a turn), so under load the scheduler runs once per batch instead of once per message.
    The core's timed work runs in a task of its own, so a wait needs no cancel scope.
    """
    out: list[list[bytes]] = []
    send_lock = trio.Lock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_tick, sock, core, send_lock)
        while True:
            now = trio.current_time()
            received = 0
            while received < BATCH and (frames := sock.try_recv_multipart()) is not None:
                core.receive_into(frames, now, out)
                received += 1
            if out:
                await _send_all(sock, out, send_lock)
                out.clear()
            if received == BATCH:
                await trio.lowlevel.checkpoint()
            else:
                await sock.wait_recv()


async def _tick(sock: Socket, core: BrokerCore, send_lock: trio.Lock) -> None:
    while True:
        await trio.sleep_until(core.next_deadline())
        await _send_all(sock, core.tick(trio.current_time()), send_lock)


async def _send_all(sock: Socket, messages: list[list[bytes]], send_lock: trio.Lock) -> None:
    for message in messages:
        # A ROUTER does not block a send (it drops what it cannot route), so the lock
        # for a waiting send (one sender at a time) is not needed in practice.
        if not sock.try_send_multipart(message):
            async with send_lock:
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
    max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    request_expiry: float = DEFAULT_REQUEST_EXPIRY,
    drop_log_interval: float = DEFAULT_LOG_INTERVAL,
    curve_server: CurveServer | None = None,
    insecure: bool = False,
    on_worker_expired: Callable[[bytes], None] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Runs a broker until cancelled; reports the bound endpoint once it is bound.

    Args:
        bind: endpoint to bind, e.g. ``tcp://127.0.0.1:*`` (a free port) or
            ``ipc:///path``. None (default) binds ipc in a private temporary directory.
        curve_server: with it, peers must speak CURVE with a key it admits.
            Without it, plain TCP on a non-loopback interface raises `InsecureEndpoint`
            unless `insecure`.
        on_worker_expired: called with the service name of a worker that went silent.
        max_waiting_requests, max_waiting_bytes: a service's queue of requests waiting
            for a worker holds at most this many, and this many bytes; more is refused.
        max_queued_bytes: the cap on all waiting requests' bytes; over it, refused.
        request_expiry: seconds a request may wait for a worker before it is dropped.
        drop_log_interval: dropped input is logged once, then summed up every interval.
    """
    if curve_server is None and bind is not None:
        curve.check_plain(bind, insecure=insecure)
    core = BrokerCore(
        heartbeat_interval,
        heartbeat_liveness,
        max_waiting_requests,
        max_waiting_bytes=max_waiting_bytes,
        max_queued_bytes=max_queued_bytes,
        request_expiry=request_expiry,
        drop_log_interval=drop_log_interval,
        now=trio.current_time(),
        on_worker_expired=on_worker_expired,
    )
    with private_ipc_endpoint() as default_endpoint, _context(curve_server) as context:
        async with open_socket(zmq.ROUTER, context=context) as sock, trio.open_nursery() as nursery:
            if curve_server is not None:
                # The ZAP handler first: without one, libzmq admits any CURVE key.
                await nursery.start(_serve_zap, context, curve_server)
                curve_server.apply(sock.raw)
            endpoint = sock.bind(bind or default_endpoint)
            log.debug("broker listening on %s", endpoint)
            task_status.started(endpoint)
            await _run(sock, core)


@contextmanager
def _context(curve_server: CurveServer | None) -> Iterator[zmq.Context[zmq.Socket[bytes]] | None]:
    """A CURVE broker's own zmq context (its ZAP endpoint is per context)."""
    if curve_server is None:
        yield None
        return
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield context
    finally:
        context.term()  # every socket in it is closed by now (linger 0)


async def _serve_zap(
    context: zmq.Context[zmq.Socket[bytes]],
    server: CurveServer,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    async with open_socket(zmq.REP, context=context) as sock:
        sock.bind(ZAP_ENDPOINT)
        task_status.started()
        await serve_zap(sock, server)


async def _main(args: argparse.Namespace) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(
                lambda task_status: serve(
                    args.bind,
                    heartbeat_interval=args.heartbeat_interval,
                    heartbeat_liveness=args.heartbeat_liveness,
                    max_waiting_requests=args.max_waiting_requests,
                    max_waiting_bytes=args.max_waiting_bytes,
                    max_queued_bytes=args.max_queued_bytes,
                    request_expiry=args.request_expiry,
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
    parser.add_argument("--max-waiting-requests", type=int, default=DEFAULT_MAX_WAITING_REQUESTS)
    parser.add_argument("--max-waiting-bytes", type=int, default=DEFAULT_MAX_WAITING_BYTES)
    parser.add_argument("--max-queued-bytes", type=int, default=DEFAULT_MAX_QUEUED_BYTES)
    parser.add_argument("--request-expiry", type=float, default=DEFAULT_REQUEST_EXPIRY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(_main, args)
    sys.exit(0)


if __name__ == "__main__":
    main()
