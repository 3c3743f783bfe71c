"""Shared pieces of the MDP tests: running a broker, workers and plain peers for the
length of an `async with`, a hand-driven ROUTER standing in for the broker, starting
helper processes, and the ResourceWarning check.

Everything started here is stopped and reaped when its block exits, also on failure.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import zmq

from mdp_plain import HEARTBEAT, MDPW01, Handler, PlainClient, PlainWorker, echo
from palaestrio.mdp import broker, worker
from palaestrio.zmq_trio import Socket, open_socket

TESTS = Path(__file__).parent
PLAIN_SCRIPT = TESTS / "mdp_plain.py"
ECHO_WORKER_SCRIPT = TESTS / "mdp_echo_worker.py"


@pytest.fixture(autouse=True)
def collect_garbage_in_test() -> Iterator[None]:
    """Collects garbage at teardown, so a ResourceWarning from an unclosed socket or
    process surfaces (filterwarnings=error) in the test that leaked it."""
    yield
    gc.collect()


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def running_broker(bind: str | None = None, **options: Any) -> AsyncIterator[str]:
    """palaestrio's broker in this trio run; yields its endpoint."""
    async with trio.open_nursery() as nursery:
        endpoint: str = await nursery.start(partial(broker.serve, bind, **options))
        yield endpoint
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_worker(
    endpoint: str,
    service: str | bytes,
    handler: Callable[[list[bytes]], Awaitable[list[bytes]]],
    **options: Any,
) -> AsyncIterator[None]:
    """palaestrio's worker in this trio run, cancelled when the block exits."""
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(worker.serve_worker, endpoint, service, handler, **options))
        yield
        nursery.cancel_scope.cancel()


async def echo_handler(body: list[bytes]) -> list[bytes]:
    return body


@asynccontextmanager
async def fake_broker() -> AsyncIterator[tuple[Socket, str]]:
    """A bare ROUTER on a free TCP port standing in for the broker: (socket, endpoint)."""
    async with open_socket(zmq.ROUTER) as router:
        yield router, router.bind("tcp://127.0.0.1:*")


async def next_command(router: Socket, *, skip_heartbeats: bool = True) -> list[bytes]:
    """The next worker command as [identity, command, *rest], checking frames 0 and 1."""
    while True:
        identity, *frames = await router.recv_multipart()
        assert frames[:2] == [b"", MDPW01], frames
        if skip_heartbeats and frames[2:] == [HEARTBEAT]:
            continue
        return [identity, *frames[2:]]


@asynccontextmanager
async def running_plain_worker(
    endpoint: str, service: bytes, handler: Handler = echo, **options: Any
) -> AsyncIterator[PlainWorker]:
    """The plain RFC worker in a thread; stopped (it sends DISCONNECT) on exit."""
    plain = PlainWorker(endpoint, service, handler, **options)
    stop = threading.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, plain.run, stop))
        try:
            # The thread checks `stop` every 20 ms, so stopping it is prompt.
            ready = await trio.to_thread.run_sync(plain.ready.wait, 10.0)
            assert ready, "plain worker thread did not send READY"
            yield plain
        finally:
            stop.set()


async def plain_request(
    endpoint: str,
    service: bytes,
    *body: bytes,
    use_dealer: bool = False,
    timeout: float = 5.0,
) -> list[bytes]:
    """One request from a fresh plain RFC client, run in a thread."""

    def run() -> list[bytes]:
        with PlainClient(endpoint, use_dealer=use_dealer) as client:
            return client.request(service, *body, timeout=timeout)

    return await trio.to_thread.run_sync(run)


class ChildProcess:
    """A helper process with its stdout lines collected by a task."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        return await self.process.wait()


async def _read_lines(child: ChildProcess, first: trio.MemorySendChannel[str]) -> None:
    stream = child.process.stdout
    assert stream is not None
    buffer = b""
    async with first:
        while True:
            chunk = await stream.receive_some()
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                child.lines.append(line)
                await first.send(line)


@asynccontextmanager
async def running_process(
    args: Sequence[str | os.PathLike[str]],
    *,
    ready_line: str,
    stderr: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> AsyncIterator[ChildProcess]:
    """Starts `args` in its own session and waits until it prints a line starting with
    `ready_line`. On exit: `stop_signal`, a 5 s grace, then SIGKILL; always reaped."""
    error_file = open(stderr, "wb") if stderr is not None else None  # noqa: ASYNC230, SIM115
    try:
        process = await trio.lowlevel.open_process(
            [str(arg) for arg in args],
            stdout=subprocess.PIPE,
            stderr=error_file,
            start_new_session=True,
        )
    finally:
        if error_file is not None:
            error_file.close()
    child = ChildProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            send, receive = trio.open_memory_channel[str](100)
            nursery.start_soon(_read_lines, child, send)
            async with receive:
                async for line in receive:
                    if line.startswith(ready_line):
                        break
                else:
                    raise AssertionError(
                        f"{args} exited ({await process.wait()}) before printing {ready_line!r}"
                    )
                # Keep draining the pipe so the child never blocks on a full one.
                nursery.start_soon(_drain, receive.clone())
            yield child
            nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(10, shield=True):
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.send_signal(stop_signal)
                with trio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                process.kill()
            await process.wait()
            assert process.stdout is not None
            await process.stdout.aclose()


async def _drain(receive: trio.MemoryReceiveChannel[str]) -> None:
    async with receive:
        async for _ in receive:
            pass


def python(*args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    """A command line running this interpreter, with ResourceWarnings shown."""
    return [sys.executable, "-W", "default::ResourceWarning", *args]
