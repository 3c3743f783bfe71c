"""The MDP/0.1 broker's state machine, without I/O: frames and the time go in, frames
to send come out (sans-IO). `palaestrio.mdp.broker` moves them over a ROUTER socket.

Every message in and out is a ROUTER message: the peer's routing identity, then the
MDP frames. Per service there is a queue of idle workers (least recently used first)
and a queue of waiting requests, so a request for a service whose worker has not come
yet waits for it. Heartbeats go out every interval from `tick`, which also forgets
workers silent for interval × liveness; a request held by a worker that dies or leaves
goes back to the head of its queue (served at least once, never silently lost).

Input is bounded: a service's queue holds at most `max_waiting_requests` requests and
`max_waiting_bytes`, all queues together `max_queued_bytes`; a request over a bound is
refused, and one that waited `request_expiry` seconds for a worker is dropped (its
sender is most likely gone). MDP/0.1 has no error reply, so both are dropped, counted
and logged. Malformed input is dropped too; `DropLog` keeps that to a few log lines
however much comes. A worker the broker does not know (it expired, or the broker
restarted) that sends HEARTBEAT or REPLY, or a worker that sends READY twice, gets
DISCONNECT, after which a well-behaved worker registers again at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from palaestrio.mdp import protocol as mdp
from palaestrio.mdp.drops import DEFAULT_LOG_INTERVAL, DropLog

# The broker's logger name from before the sans-IO split, so logging setups still apply.
log = logging.getLogger("palaestrio.mdp.broker")

MiB = 1 << 20
DEFAULT_MAX_WAITING_REQUESTS = 1000
DEFAULT_MAX_WAITING_BYTES = 256 * MiB
DEFAULT_MAX_QUEUED_BYTES = 512 * MiB
DEFAULT_REQUEST_EXPIRY = 60.0
REQUEST_OVERHEAD = 128
"""Bytes a queued request costs beyond its frames (list, tuple, bytes headers)."""

Message = list[bytes]
"""One ROUTER message: the peer's identity, then the MDP frames."""

Request = tuple[bytes, list[bytes], int, float]
"""A request: client identity, body, its size in bytes, when it arrived."""


class Malformed(mdp.ProtocolError):
    """Input the broker drops; `kind` names the problem for the summary log line."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(eq=False, slots=True)
class _Worker:
    identity: bytes
    service: _Service
    expires_at: float
    busy_with: Request | None = None


@dataclass(eq=False, slots=True)
class _Service:
    name: bytes
    idle: OrderedDict[bytes, _Worker] = field(default_factory=OrderedDict)
    """Idle workers, least recently used first."""
    waiting: deque[Request] = field(default_factory=deque)
    """Requests no worker has taken yet, oldest first."""
    waiting_bytes: int = 0
    workers: int = 0


class BrokerCore:
    """An MDP/0.1 broker's state; times are seconds on any monotonic clock.

    Feed it every message from the ROUTER with `receive` (or `receive_into`) and call
    `tick` when `next_deadline` has come; send what they return, in order.
    """

    def __init__(
        self,
        heartbeat_interval: float = mdp.DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_liveness: int = mdp.DEFAULT_HEARTBEAT_LIVENESS,
        max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS,
        *,
        max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        request_expiry: float = DEFAULT_REQUEST_EXPIRY,
        drop_log_interval: float = DEFAULT_LOG_INTERVAL,
        now: float = 0.0,
        on_worker_expired: Callable[[bytes], None] | None = None,
    ) -> None:
        self._interval = heartbeat_interval
        self._expiry = heartbeat_interval * heartbeat_liveness
        self._max_waiting = max_waiting_requests
        self._max_waiting_bytes = max_waiting_bytes
        self._max_queued_bytes = max_queued_bytes
        self._request_expiry = request_expiry
        self._services: dict[bytes, _Service] = {}
        self._workers: dict[bytes, _Worker] = {}
        self._next_heartbeat = now + heartbeat_interval
        self.queued_bytes = 0
        """What every waiting request takes, by `REQUEST_OVERHEAD` + its frames' bytes."""
        self.drops = DropLog(log, drop_log_interval)
        # The failure detector's output: whose worker (a governor) went silent.
        self._on_worker_expired = on_worker_expired

    @property
    def queued_requests(self) -> int:
        return sum(len(service.waiting) for service in self._services.values())

    def next_deadline(self) -> float:
        """When `tick` has work next (heartbeats, silent workers, expired requests)."""
        return self._next_heartbeat

    def receive(self, frames: Message, now: float) -> list[Message]:
        """Handles one message from the ROUTER; returns the messages to send."""
        out: list[Message] = []
        self.receive_into(frames, now, out)
        return out

    def receive_into(self, frames: Message, now: float, out: list[Message]) -> None:
        """Handles one message from the ROUTER; appends the messages to send to `out`."""
        try:
            self._handle(frames, now, out)
        except Malformed as problem:
            sender = frames[0][:32] if frames else b""
            self.drops.drop(problem.kind, f"dropped a message from {sender!r}: {problem}", now)

    def tick(self, now: float) -> list[Message]:
        """Forgets silent workers, drops expired requests and heartbeats the workers, if
        `next_deadline` has come."""
        out: list[Message] = []
        if now < self._next_heartbeat:
            return out
        for worker in [w for w in self._workers.values() if w.expires_at < now]:
            log.info("worker of %r went silent; forgetting it", worker.service.name)
            self._forget(worker, now)
            self._dispatch(worker.service, out)
            if self._on_worker_expired is not None:
                self._on_worker_expired(worker.service.name)
        self._expire_requests(now)
        self.drops.flush(now)
        out.extend([identity, b"", mdp.WORKER, mdp.HEARTBEAT] for identity in self._workers)
        self._next_heartbeat = now + self._interval
        return out

    # -- dispatch ------------------------------------------------------------------

    def _handle(self, frames: Message, now: float, out: list[Message]) -> None:
        if len(frames) < 3:
            raise Malformed("too short", f"{len(frames)} frame(s), an MDP message has 3+")
        if frames[1]:
            raise Malformed("no delimiter", "second frame is not the empty delimiter")
        header = frames[2]
        if header == mdp.CLIENT:
            self._client_request(frames, now, out)
        elif header == mdp.WORKER:
            self._worker_message(frames[0], frames[3:], now, out)
        else:
            raise Malformed("bad header", f"unknown protocol header {header[:16]!r}")

    def _client_request(self, frames: Message, now: float, out: list[Message]) -> None:
        if len(frames) < 4:
            raise Malformed("no service", "client request without a service frame")
        client, service_name, body = frames[0], frames[3], frames[4:]
        if service_name.startswith(mdp.MMI_PREFIX):
            out.append([client, b"", mdp.CLIENT, service_name, self._mmi(service_name, body)])
            return
        size = REQUEST_OVERHEAD + len(client) + sum(map(len, body))
        service = self._service(service_name)
        refusal = self._refusal(service, size)
        if refusal is not None:
            self._drop_if_unused(service)
            self.drops.drop("refused", f"refused a request for {service_name!r}: {refusal}", now)
            return
        service.waiting.append((client, body, size, now))
        service.waiting_bytes += size
        self.queued_bytes += size
        self._dispatch(service, out)

    def _refusal(self, service: _Service, size: int) -> str | None:
        """Why a request of `size` bytes cannot wait for `service`, if it cannot."""
        if len(service.waiting) >= self._max_waiting:
            return f"{len(service.waiting)} requests already wait for a worker, the service's limit"
        if service.waiting_bytes + size > self._max_waiting_bytes:
            return (
                f"it takes {size:,} bytes and {service.waiting_bytes:,} already wait, "
                f"over the service's limit of {self._max_waiting_bytes:,} bytes"
            )
        if self.queued_bytes + size > self._max_queued_bytes:
            return (
                f"it takes {size:,} bytes and requests for all services take "
                f"{self.queued_bytes:,}, over the broker's cap of {self._max_queued_bytes:,}"
            )
        return None

    def _mmi(self, service_name: bytes, body: list[bytes]) -> bytes:
        if service_name != mdp.MMI_SERVICE:
            return b"501"
        known = self._services.get(body[0]) if body else None
        return b"200" if known is not None and known.workers else b"404"

    def _worker_message(
        self, identity: bytes, frames: list[bytes], now: float, out: list[Message]
    ) -> None:
        if not frames:
            raise Malformed("no command", "worker message without a command frame")
        command, rest = frames[0], frames[1:]
        worker = self._workers.get(identity)
        if worker is not None:
            worker.expires_at = now + self._expiry
        if command == mdp.REPLY:
            self._reply(identity, worker, rest, now, out)
        elif command == mdp.HEARTBEAT:
            if worker is None:
                out.append(_disconnect(identity))
        elif command == mdp.READY:
            self._ready(identity, worker, rest, now, out)
        elif command == mdp.DISCONNECT:
            if worker is not None:
                self._forget(worker, now)
                self._dispatch(worker.service, out)
        else:
            raise Malformed("unknown command", f"unknown worker command {command[:8]!r}")

    def _ready(
        self,
        identity: bytes,
        worker: _Worker | None,
        rest: list[bytes],
        now: float,
        out: list[Message],
    ) -> None:
        if not rest:
            raise Malformed("bad READY", "READY without a service name")
        if worker is not None or rest[0].startswith(mdp.MMI_PREFIX):
            # A second READY (or a reserved name): make it start over cleanly.
            out.append(_disconnect(identity))
            if worker is not None:
                self._forget(worker, now)
                self._dispatch(worker.service, out)  # the request it held, if any
            return
        service = self._service(rest[0])
        worker = _Worker(identity, service, now + self._expiry)
        self._workers[identity] = worker
        service.workers += 1
        service.idle[identity] = worker
        self._dispatch(service, out)

    def _reply(
        self,
        identity: bytes,
        worker: _Worker | None,
        rest: list[bytes],
        now: float,
        out: list[Message],
    ) -> None:
        if len(rest) < 2 or rest[1]:
            raise Malformed("bad REPLY", "REPLY without client address and empty delimiter")
        if worker is None or worker.busy_with is None:
            # Unknown, or it answers a request it never got: make it start over.
            if worker is not None:
                self._forget(worker, now)
            out.append(_disconnect(identity))
            return
        service = worker.service
        out.append([rest[0], b"", mdp.CLIENT, service.name, *rest[2:]])
        worker.busy_with = None
        if service.waiting:
            self._hand_over(worker, service, out)
        else:
            service.idle[identity] = worker

    def _dispatch(self, service: _Service, out: list[Message]) -> None:
        while service.waiting and service.idle:
            self._hand_over(service.idle.popitem(last=False)[1], service, out)

    def _hand_over(self, worker: _Worker, service: _Service, out: list[Message]) -> None:
        request = worker.busy_with = service.waiting.popleft()
        service.waiting_bytes -= request[2]
        self.queued_bytes -= request[2]
        out.append([worker.identity, b"", mdp.WORKER, mdp.REQUEST, request[0], b"", *request[1]])

    # -- bookkeeping ---------------------------------------------------------------

    def _expire_requests(self, now: float) -> None:
        oldest_kept = now - self._request_expiry
        for service in list(self._services.values()):
            # Oldest first (a requeued request is older than those behind it).
            while service.waiting and service.waiting[0][3] < oldest_kept:
                _, _, size, _ = service.waiting.popleft()
                service.waiting_bytes -= size
                self.queued_bytes -= size
                self.drops.drop(
                    "expired",
                    f"dropped a request for {service.name!r}: no worker took it "
                    f"within {self._request_expiry:g} s",
                    now,
                )
            self._drop_if_unused(service)

    def _service(self, name: bytes) -> _Service:
        service = self._services.get(name)
        if service is None:
            service = self._services[name] = _Service(name)
        return service

    def _drop_if_unused(self, service: _Service) -> None:
        # Random service names must not pile up as empty entries.
        if not service.workers and not service.waiting:
            self._services.pop(service.name, None)

    def _forget(self, worker: _Worker, now: float) -> None:
        del self._workers[worker.identity]
        service = worker.service
        service.idle.pop(worker.identity, None)
        service.workers -= 1
        if worker.busy_with is not None:
            # It never answered: the request goes back to the front of the queue, so a
            # worker that comes later serves it (at least once, never silently lost).
            self.drops.drop(
                "requeued",
                f"worker of {service.name!r} left while serving a request; requeued it",
                now,
            )
            service.waiting.appendleft(worker.busy_with)
            service.waiting_bytes += worker.busy_with[2]
            self.queued_bytes += worker.busy_with[2]
            worker.busy_with = None
        else:
            self._drop_if_unused(service)


def _disconnect(identity: bytes) -> Message:
    return [identity, b"", mdp.WORKER, mdp.DISCONNECT]
