"""The MDP/0.1 broker: one ROUTER socket that clients and workers both connect to.

The broker's rules live in `broker_core.BrokerCore`, which does no I/O. This module
drives it: one thread owns the socket, feeds every message it receives to the core,
sends what the core answers, and calls the core's `tick` when its deadline comes
(heartbeats, worker expiry), all from the same blocking loop; `serve` is the trio face
of that thread (started once bound, cancelled to stop it).

Run alone: ``python -m palaestrio.mdp.broker --bind tcp://127.0.0.1:5555``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

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
from palaestrio.zmq_trio import Socket, open_socket, recv_now, send_now

if TYPE_CHECKING:
    from outcome import Outcome

__all__ = ["DEFAULT_MAX_WAITING_REQUESTS", "main", "private_ipc_endpoint", "serve"]

log = logging.getLogger(__name__)


async def _run(sock: Socket, core: BrokerCore) -> None:
    """Moves frames between `sock` and `core` until cancelled, in a thread of its own.

    The socket loop is a plain blocking one (`zmq.Poller`, receive everything that is
    there, send what the core answers, `tick` when its deadline comes): per message it
    costs a poll at most, where a trio task paid an epoll registration, a wait and a
    scheduler pass (measured: benchmarks/mdp_broker.py). The thread alone touches the
    socket from here on; cancelling this task wakes it through a pipe and waits for it.
    """
    stop_reader, stop_writer = os.pipe()
    finished = trio.Event()
    result: list[Outcome[None]] = []
    token = trio.lowlevel.current_trio_token()

    def report(value: Outcome[None]) -> None:
        result.append(value)
        token.run_sync_soon(finished.set)

    try:
        trio.lowlevel.start_thread_soon(partial(_loop, sock.raw, core, stop_reader), report)
        try:
            await finished.wait()
        finally:
            os.write(stop_writer, b"x")
            with trio.CancelScope(shield=True):
                await finished.wait()
    finally:
        os.close(stop_reader)
        os.close(stop_writer)
    result[0].unwrap()


def _loop(raw: zmq.Socket[bytes], core: BrokerCore, stop: int) -> None:
    poller = zmq.Poller()
    poller.register(raw, zmq.POLLIN)
    poller.register(stop, zmq.POLLIN)
    out: list[list[bytes]] = []
    while True:
        now = time.monotonic()
        deadline = core.next_deadline()
        if deadline <= now:
            _send_all(raw, core.tick(now))
            continue
        wait = None if math.isinf(deadline) else math.ceil((deadline - now) * 1e3)
        if any(fd == stop for fd, _ in poller.poll(wait)):
            return
        now = time.monotonic()
        while True:
            try:
                frames = recv_now(raw)
            except zmq.Again:
                break
            core.receive_into(frames, now, out)
        _send_all(raw, out)
        out.clear()


def _send_all(raw: zmq.Socket[bytes], messages: list[list[bytes]]) -> None:
    for message in messages:
        # A ROUTER never blocks a send: what it cannot route, it drops (Again would only
        # come from a peer's full queue, where a blocking send would drop it too).
        with contextlib.suppress(zmq.Again):
            send_now(raw, message)


def _in_trio(callback: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`callback`, called from the broker's thread, runs in this trio loop."""
    token = trio.lowlevel.current_trio_token()

    def call_soon(service: bytes) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(callback, service)

    return call_soon


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
        now=time.monotonic(),  # the broker's thread keeps time with this clock
        on_worker_expired=None if on_worker_expired is None else _in_trio(on_worker_expired),
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
