"""The MDP/0.1 broker: one ROUTER socket that clients and workers both connect to.

One task owns the socket and does everything (trio-notes §1.2a): it receives a message,
updates the broker's state and sends what that causes; heartbeats and worker expiry run
from the same loop between messages. Per service there is a queue of idle workers
(least recently used first) and a bounded queue of waiting requests, so a request for a
service whose worker has not come yet waits for it.

Malformed input never stops the broker: it is dropped with one warning saying what was
wrong. A worker the broker does not know (it expired, or the broker restarted) that
sends HEARTBEAT or REPLY, or a worker that sends READY twice, gets DISCONNECT, after
which a well-behaved worker registers again at once.

Run alone: ``python -m palaestrio.mdp.broker --bind tcp://127.0.0.1:5555``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio
import zmq

from palaestrio.mdp import protocol as mdp
from palaestrio.zmq_trio import Socket, open_socket

log = logging.getLogger(__name__)

DEFAULT_MAX_WAITING_REQUESTS = 1000


@dataclass(eq=False)
class _Worker:
    identity: bytes
    service: _Service
    expires_at: float
    busy_with: tuple[bytes, list[bytes]] | None = None
    """The request (client identity, body) the worker is serving."""


@dataclass(eq=False)
class _Service:
    name: bytes
    idle: OrderedDict[bytes, _Worker] = field(default_factory=OrderedDict)
    """Idle workers, least recently used first."""
    waiting: deque[tuple[bytes, list[bytes]]] = field(default_factory=deque)
    """Requests (client identity, body) no worker has taken yet."""
    workers: int = 0


class _Broker:
    def __init__(
        self,
        sock: Socket,
        heartbeat_interval: float,
        heartbeat_liveness: int,
        max_waiting_requests: int,
    ) -> None:
        self.sock = sock
        self.heartbeat_interval = heartbeat_interval
        self.expiry = heartbeat_interval * heartbeat_liveness
        self.max_waiting = max_waiting_requests
        self.services: dict[bytes, _Service] = {}
        self.workers: dict[bytes, _Worker] = {}

    async def run(self) -> None:
        next_heartbeat = trio.current_time() + self.heartbeat_interval
        while True:
            frames: list[bytes] | None = None
            with trio.move_on_at(next_heartbeat):
                frames = await self.sock.recv_multipart()
            if frames is not None:
                try:
                    await self.handle(frames)
                except mdp.ProtocolError as problem:
                    log.warning("dropped a message from %r: %s", frames[0][:32], problem)
            now = trio.current_time()
            if now >= next_heartbeat:
                await self.heartbeat(now)
                next_heartbeat = now + self.heartbeat_interval

    # -- dispatch ------------------------------------------------------------------

    async def handle(self, frames: list[bytes]) -> None:
        if len(frames) < 3:
            raise mdp.ProtocolError(f"{len(frames)} frame(s), an MDP message has at least 3")
        sender, empty, header = frames[0], frames[1], frames[2]
        if empty:
            raise mdp.ProtocolError("second frame is not the empty delimiter")
        if header == mdp.CLIENT:
            await self.client_request(sender, frames[3:])
        elif header == mdp.WORKER:
            await self.worker_message(sender, frames[3:])
        else:
            raise mdp.ProtocolError(f"unknown protocol header {header[:16]!r}")

    async def client_request(self, client: bytes, frames: list[bytes]) -> None:
        if not frames:
            raise mdp.ProtocolError("client request without a service frame")
        service_name, body = frames[0], frames[1:]
        if service_name.startswith(mdp.MMI_PREFIX):
            await self.mmi(client, service_name, body)
            return
        service = self.service(service_name)
        if len(service.waiting) >= self.max_waiting:
            log.warning(
                "dropped a request for %r: %d requests already wait for a worker",
                service_name,
                len(service.waiting),
            )
            return
        service.waiting.append((client, body))
        await self.dispatch(service)

    async def mmi(self, client: bytes, service_name: bytes, body: list[bytes]) -> None:
        if service_name == mdp.MMI_SERVICE:
            known = self.services.get(body[0]) if body else None
            code = b"200" if known is not None and known.workers else b"404"
        else:
            code = b"501"
        await self.sock.send_multipart([client, b"", mdp.CLIENT, service_name, code])

    async def worker_message(self, identity: bytes, frames: list[bytes]) -> None:
        if not frames:
            raise mdp.ProtocolError("worker message without a command frame")
        command, rest = frames[0], frames[1:]
        worker = self.workers.get(identity)
        if worker is not None:
            worker.expires_at = trio.current_time() + self.expiry
        if command == mdp.READY:
            if not rest:
                raise mdp.ProtocolError("READY without a service name")
            if worker is not None or rest[0].startswith(mdp.MMI_PREFIX):
                # A second READY (or a reserved name): make it start over cleanly.
                self.forget(worker)
                await self.disconnect(identity)
                return
            service = self.service(rest[0])
            worker = _Worker(identity, service, trio.current_time() + self.expiry)
            self.workers[identity] = worker
            service.workers += 1
            service.idle[identity] = worker
            await self.dispatch(service)
        elif command == mdp.REPLY:
            if len(rest) < 2 or rest[1]:
                raise mdp.ProtocolError("REPLY without client address and empty delimiter")
            if worker is None or worker.busy_with is None:
                # Unknown, or it answers a request it never got: make it start over.
                self.forget(worker)
                await self.disconnect(identity)
                return
            client, body = rest[0], rest[2:]
            reply = [client, b"", mdp.CLIENT, worker.service.name, *body]
            await self.sock.send_multipart(reply)
            worker.busy_with = None
            worker.service.idle[identity] = worker
            await self.dispatch(worker.service)
        elif command == mdp.HEARTBEAT:
            if worker is None:
                await self.disconnect(identity)
        elif command == mdp.DISCONNECT:
            self.forget(worker)
            if worker is not None:
                await self.dispatch(worker.service)
        else:
            raise mdp.ProtocolError(f"unknown worker command {command[:8]!r}")

    async def dispatch(self, service: _Service) -> None:
        while service.waiting and service.idle:
            identity, worker = service.idle.popitem(last=False)
            client, body = service.waiting.popleft()
            worker.busy_with = (client, body)
            await self.sock.send_multipart(
                [identity, b"", mdp.WORKER, mdp.REQUEST, client, b"", *body]
            )

    # -- bookkeeping ---------------------------------------------------------------

    def service(self, name: bytes) -> _Service:
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = _Service(name)
        return service

    def forget(self, worker: _Worker | None) -> None:
        if worker is None:
            return
        del self.workers[worker.identity]
        worker.service.idle.pop(worker.identity, None)
        worker.service.workers -= 1
        if worker.busy_with is not None:
            # It never answered: the request goes back to the front of the queue, so a
            # worker that comes later serves it (at least once, never silently lost).
            log.warning(
                "worker of %r left while serving a request; requeued it", worker.service.name
            )
            worker.service.waiting.appendleft(worker.busy_with)
            worker.busy_with = None

    async def disconnect(self, identity: bytes) -> None:
        await self.sock.send_multipart([identity, b"", mdp.WORKER, mdp.DISCONNECT])

    async def heartbeat(self, now: float) -> None:
        for worker in [w for w in self.workers.values() if w.expires_at < now]:
            log.info("worker of %r went silent; forgetting it", worker.service.name)
            self.forget(worker)
            await self.dispatch(worker.service)
        for identity in self.workers:
            await self.sock.send_multipart([identity, b"", mdp.WORKER, mdp.HEARTBEAT])


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
            broker = _Broker(sock, heartbeat_interval, heartbeat_liveness, max_waiting_requests)
            log.debug("broker listening on %s", endpoint)
            task_status.started(endpoint)
            await broker.run()


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
