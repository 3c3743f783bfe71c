"""The MDP/0.1 worker: serves one service's requests, one at a time, with a handler.

A session is one connection to the broker: READY, then requests and heartbeats. The
receiving task hands requests to a handler task so heartbeats keep flowing both ways
while a long request runs. When the broker stays silent for interval × liveness, or
says DISCONNECT, the session ends and a new one starts (after a back-off that doubles up
to a maximum when the broker is silent; at once after DISCONNECT), unless the caller
said `reconnect=False`: then the worker ends with `BrokerLost`. Cancellation, and a
silent broker, send DISCONNECT so the broker forgets the worker at once instead of after
its expiry; a DISCONNECT from the broker is not answered (RFC 7: no further commands).

Run alone as an echo worker (tests, benchmarks):
``python -m palaestrio.mdp.worker --connect ENDPOINT --service NAME --echo``.
"""

from __future__ import annotations

import argparse
import enum
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from functools import partial

import trio
import zmq

from palaestrio.mdp import protocol as mdp
from palaestrio.zmq_trio import Socket, open_socket

log = logging.getLogger(__name__)

Handler = Callable[[list[bytes]], Awaitable[list[bytes]]]


class _SessionEnd(enum.Enum):
    BROKER_SILENT = enum.auto()
    BROKER_DISCONNECTED = enum.auto()


async def serve_worker(
    endpoint: str,
    service: str | bytes,
    handler: Handler,
    *,
    heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL,
    heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS,
    reconnect_delay: float = 0.1,
    max_reconnect_delay: float = 2.0,
    reconnect: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves `service` at the broker `endpoint` until cancelled.

    `handler` gets a request's body frames and returns the reply's body frames. An
    exception from it ends `serve_worker` (after DISCONNECT): handlers that must
    survive bad requests catch their errors and reply with an error message.

    With `reconnect=False` a broker silent for interval × liveness, or one that sends
    DISCONNECT, ends `serve_worker` with `BrokerLost` instead of a new session: for a
    worker that must not outlive its broker (nor meet the next one on the same endpoint).
    """
    service_name = mdp.as_service(service)
    session = _Session(endpoint, service_name, handler, heartbeat_interval, heartbeat_liveness)
    delay = reconnect_delay
    while True:
        end = await session.run(task_status)
        task_status = trio.TASK_STATUS_IGNORED
        if not reconnect:
            # Raised outside the session's nursery, so the caller gets it unwrapped.
            raise mdp.BrokerLost(session.describe(end))
        if end is _SessionEnd.BROKER_DISCONNECTED:
            delay = reconnect_delay
            continue
        log.info("broker at %s is silent; reconnecting in %.2f s", endpoint, delay)
        await trio.sleep(delay)
        delay = min(delay * 2, max_reconnect_delay)


class _Session:
    def __init__(
        self,
        endpoint: str,
        service: bytes,
        handler: Handler,
        heartbeat_interval: float,
        heartbeat_liveness: int,
    ) -> None:
        self.endpoint = endpoint
        self.service = service
        self.handler = handler
        self.interval = heartbeat_interval
        self.silence_limit = heartbeat_interval * heartbeat_liveness
        # Replies and heartbeats come from two tasks; a socket takes one sender at a time.
        self.send_lock = trio.Lock()
        self.handler_error: BaseException | None = None

    def describe(self, end: _SessionEnd) -> str:
        if end is _SessionEnd.BROKER_DISCONNECTED:
            return f"MDP broker at {self.endpoint} sent DISCONNECT"
        return f"MDP broker at {self.endpoint} silent for {self.silence_limit:g} s"

    async def run(self, task_status: trio.TaskStatus[None]) -> _SessionEnd:
        async with open_socket(zmq.DEALER) as sock:
            sock.connect(self.endpoint)
            end: _SessionEnd | None = None
            try:
                end = await self._serve(sock, task_status)
                return end
            finally:
                if end is not _SessionEnd.BROKER_DISCONNECTED:
                    # Best effort, without waiting: a silent broker would never take it.
                    sock.try_send_multipart([b"", mdp.WORKER, mdp.DISCONNECT])

    async def _serve(self, sock: Socket, task_status: trio.TaskStatus[None]) -> _SessionEnd:
        await sock.send_multipart([b"", mdp.WORKER, mdp.READY, self.service])
        task_status.started()
        requests_in, requests_out = trio.open_memory_channel[tuple[bytes, list[bytes]]](math.inf)
        self.handler_error = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeats, sock)
            nursery.start_soon(self._handle_requests, sock, requests_out, nursery.cancel_scope)
            end = await self._receive(sock, requests_in)
            nursery.cancel_scope.cancel()
        if self.handler_error is not None:
            # The handler's own exception, not a group: serve_worker's caller decides.
            raise self.handler_error
        return end

    async def _receive(
        self, sock: Socket, requests: trio.MemorySendChannel[tuple[bytes, list[bytes]]]
    ) -> _SessionEnd:
        heard_at = trio.current_time()
        while True:
            # Everything that is there at once, then one wait (a scheduler pass per batch).
            while (frames := sock.try_recv_multipart()) is not None:
                heard_at = trio.current_time()
                if self._handle(frames, requests):
                    return _SessionEnd.BROKER_DISCONNECTED
            with trio.move_on_at(heard_at + self.silence_limit) as silence:
                await sock.wait_recv()
            if silence.cancelled_caught:
                return _SessionEnd.BROKER_SILENT

    @staticmethod
    def _handle(
        frames: list[bytes], requests: trio.MemorySendChannel[tuple[bytes, list[bytes]]]
    ) -> bool:
        """Passes a REQUEST on to the handler task; says whether the broker disconnected."""
        if len(frames) < 3 or frames[0] or frames[1] != mdp.WORKER:
            log.warning("worker dropped a malformed message (%d frames)", len(frames))
            return False
        command = frames[2]
        if command == mdp.REQUEST:
            if len(frames) < 5 or frames[4]:
                log.warning("worker dropped a REQUEST without client envelope")
            else:
                requests.send_nowait((frames[3], frames[5:]))
        elif command == mdp.DISCONNECT:
            return True
        elif command != mdp.HEARTBEAT:
            log.warning("worker dropped unknown command %r", command[:8])
        return False

    async def _handle_requests(
        self,
        sock: Socket,
        requests: trio.MemoryReceiveChannel[tuple[bytes, list[bytes]]],
        session: trio.CancelScope,
    ) -> None:
        async for client, body in requests:
            try:
                reply = await self.handler(body)
            except Exception as error:
                self.handler_error = error
                session.cancel()
                return
            await self._send(sock, [b"", mdp.WORKER, mdp.REPLY, client, b"", *reply])

    async def _heartbeats(self, sock: Socket) -> None:
        while True:
            await trio.sleep(self.interval)
            await self._send(sock, [b"", mdp.WORKER, mdp.HEARTBEAT])

    async def _send(self, sock: Socket, message: list[bytes]) -> None:
        # Without waiting when the socket takes it now (no lock, no scheduler pass);
        # try_send refuses while the other task is in a waiting send.
        if not sock.try_send_multipart(message):
            async with self.send_lock:
                await sock.send_multipart(message)


async def _echo(body: list[bytes]) -> list[bytes]:
    return body


async def _main(endpoint: str, service: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_worker, endpoint, service, _echo))
            print("palaestrio worker ready", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m palaestrio.mdp.worker")
    parser.add_argument("--connect", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--echo", action="store_true", required=True, help="echo requests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    trio.run(_main, args.connect, args.service)


if __name__ == "__main__":
    main()
