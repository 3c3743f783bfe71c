"""The MDP/0.1 broker's state machine, without I/O: frames and the time go in, frames
to send come out (sans-IO). `palaestrio.mdp.broker` moves them over a ROUTER socket.

Every message in and out is a ROUTER message: the peer's routing identity, then the
MDP frames. Per service there is a queue of idle workers (least recently used first)
and a bounded queue of waiting requests, so a request for a service whose worker has
not come yet waits for it. Heartbeats go out every interval from `tick`, which also
forgets workers silent for interval × liveness; a request held by a worker that dies or
leaves goes back to the head of its queue (served at least once, never silently lost).

Malformed input is dropped with one warning saying what was wrong. A worker the broker
does not know (it expired, or the broker restarted) that sends HEARTBEAT or REPLY, or a
worker that sends READY twice, gets DISCONNECT, after which a well-behaved worker
registers again at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from palaestrio.mdp import protocol as mdp

# The broker's logger name from before the sans-IO split, so logging setups still apply.
log = logging.getLogger("palaestrio.mdp.broker")

DEFAULT_MAX_WAITING_REQUESTS = 1000

Message = list[bytes]
"""One ROUTER message: the peer's identity, then the MDP frames."""


@dataclass(eq=False, slots=True)
class _Worker:
    identity: bytes
    service: _Service
    expires_at: float
    busy_with: tuple[bytes, list[bytes]] | None = None
    """The request (client identity, body) the worker is serving."""


@dataclass(eq=False, slots=True)
class _Service:
    name: bytes
    idle: OrderedDict[bytes, _Worker] = field(default_factory=OrderedDict)
    """Idle workers, least recently used first."""
    waiting: deque[tuple[bytes, list[bytes]]] = field(default_factory=deque)
    """Requests (client identity, body) no worker has taken yet."""
    workers: int = 0


class BrokerCore:
    """An MDP/0.1 broker's state; times are seconds on any monotonic clock.

    Feed it every message from the ROUTER with `receive` and call `tick` when
    `next_deadline` has come; send what both return, in order.
    """

    def __init__(
        self,
        heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS,
        max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS,
        *,
        now: float = 0.0,
        on_worker_expired: Callable[[bytes], None] | None = None,
    ) -> None:
        self._interval = heartbeat_interval
        self._expiry = heartbeat_interval * heartbeat_liveness
        self._max_waiting = max_waiting_requests
        self._services: dict[bytes, _Service] = {}
        self._workers: dict[bytes, _Worker] = {}
        self._next_heartbeat = now + heartbeat_interval
        # The failure detector's output: whose worker (a governor) went silent.
        self._on_worker_expired = on_worker_expired

    def next_deadline(self) -> float:
        """When `tick` has work next (heartbeats out, silent workers forgotten)."""
        return self._next_heartbeat

    def receive(self, frames: Message, now: float) -> list[Message]:
        """Handles one message from the ROUTER; returns the messages to send."""
        out: list[Message] = []
        try:
            self._handle(frames, now, out)
        except mdp.ProtocolError as problem:
            sender = frames[0][:32] if frames else b""
            log.warning("dropped a message from %r: %s", sender, problem)
        return out

    def tick(self, now: float) -> list[Message]:
        """Forgets silent workers and heartbeats the rest, if `next_deadline` has come."""
        out: list[Message] = []
        if now < self._next_heartbeat:
            return out
        for worker in [w for w in self._workers.values() if w.expires_at < now]:
            log.info("worker of %r went silent; forgetting it", worker.service.name)
            self._forget(worker)
            self._dispatch(worker.service, out)
            if self._on_worker_expired is not None:
                self._on_worker_expired(worker.service.name)
        out.extend([identity, b"", mdp.WORKER, mdp.HEARTBEAT] for identity in self._workers)
        self._next_heartbeat = now + self._interval
        return out

    # -- dispatch ------------------------------------------------------------------

    def _handle(self, frames: Message, now: float, out: list[Message]) -> None:
        if len(frames) < 3:
            raise mdp.ProtocolError(f"{len(frames)} frame(s), an MDP message has at least 3")
        sender, empty, header = frames[0], frames[1], frames[2]
        if empty:
            raise mdp.ProtocolError("second frame is not the empty delimiter")
        if header == mdp.CLIENT:
            self._client_request(sender, frames[3:], out)
        elif header == mdp.WORKER:
            self._worker_message(sender, frames[3:], now, out)
        else:
            raise mdp.ProtocolError(f"unknown protocol header {header[:16]!r}")

    def _client_request(self, client: bytes, frames: list[bytes], out: list[Message]) -> None:
        if not frames:
            raise mdp.ProtocolError("client request without a service frame")
        service_name, body = frames[0], frames[1:]
        if service_name.startswith(mdp.MMI_PREFIX):
            out.append([client, b"", mdp.CLIENT, service_name, self._mmi(service_name, body)])
            return
        service = self._service(service_name)
        if len(service.waiting) >= self._max_waiting:
            log.warning(
                "dropped a request for %r: %d requests already wait for a worker",
                service_name,
                len(service.waiting),
            )
            return
        service.waiting.append((client, body))
        self._dispatch(service, out)

    def _mmi(self, service_name: bytes, body: list[bytes]) -> bytes:
        if service_name != mdp.MMI_SERVICE:
            return b"501"
        known = self._services.get(body[0]) if body else None
        return b"200" if known is not None and known.workers else b"404"

    def _worker_message(
        self, identity: bytes, frames: list[bytes], now: float, out: list[Message]
    ) -> None:
        if not frames:
            raise mdp.ProtocolError("worker message without a command frame")
        command, rest = frames[0], frames[1:]
        worker = self._workers.get(identity)
        if worker is not None:
            worker.expires_at = now + self._expiry
        if command == mdp.READY:
            self._ready(identity, worker, rest, now, out)
        elif command == mdp.REPLY:
            self._reply(identity, worker, rest, out)
        elif command == mdp.HEARTBEAT:
            if worker is None:
                out.append(_disconnect(identity))
        elif command == mdp.DISCONNECT:
            if worker is not None:
                self._forget(worker)
                self._dispatch(worker.service, out)
        else:
            raise mdp.ProtocolError(f"unknown worker command {command[:8]!r}")

    def _ready(
        self,
        identity: bytes,
        worker: _Worker | None,
        rest: list[bytes],
        now: float,
        out: list[Message],
    ) -> None:
        if not rest:
            raise mdp.ProtocolError("READY without a service name")
        if worker is not None or rest[0].startswith(mdp.MMI_PREFIX):
            # A second READY (or a reserved name): make it start over cleanly.
            out.append(_disconnect(identity))
            if worker is not None:
                self._forget(worker)
                self._dispatch(worker.service, out)  # the request it held, if any
            return
        service = self._service(rest[0])
        worker = _Worker(identity, service, now + self._expiry)
        self._workers[identity] = worker
        service.workers += 1
        service.idle[identity] = worker
        self._dispatch(service, out)

    def _reply(
        self, identity: bytes, worker: _Worker | None, rest: list[bytes], out: list[Message]
    ) -> None:
        if len(rest) < 2 or rest[1]:
            raise mdp.ProtocolError("REPLY without client address and empty delimiter")
        if worker is None or worker.busy_with is None:
            # Unknown, or it answers a request it never got: make it start over.
            if worker is not None:
                self._forget(worker)
            out.append(_disconnect(identity))
            return
        client, body = rest[0], rest[2:]
        out.append([client, b"", mdp.CLIENT, worker.service.name, *body])
        worker.busy_with = None
        worker.service.idle[identity] = worker
        self._dispatch(worker.service, out)

    def _dispatch(self, service: _Service, out: list[Message]) -> None:
        while service.waiting and service.idle:
            identity, worker = service.idle.popitem(last=False)
            client, body = service.waiting.popleft()
            worker.busy_with = (client, body)
            out.append([identity, b"", mdp.WORKER, mdp.REQUEST, client, b"", *body])

    # -- bookkeeping ---------------------------------------------------------------

    def _service(self, name: bytes) -> _Service:
        service = self._services.get(name)
        if service is None:
            service = self._services[name] = _Service(name)
        return service

    def _forget(self, worker: _Worker) -> None:
        del self._workers[worker.identity]
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


def _disconnect(identity: bytes) -> Message:
    return [identity, b"", mdp.WORKER, mdp.DISCONNECT]
