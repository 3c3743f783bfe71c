"""A plain blocking-pyzmq MDP/0.1 broker, the yardstick for palaestrio's broker.

Written from ZeroMQ RFC 7 (7/MDP) and RFC 8 (8/MMI) in the shape of the zguide's
Python reference broker ("mdbroker.py"): one ROUTER, a poll with the heartbeat interval
as timeout, then one message received and handled per loop, services holding a list of
requests and a list of idle workers, each worker with an expiry, heartbeats to every
worker once per interval. No code is taken from the zguide (there is no internet here);
what it shares is the design, so the comparison is with a typical plain broker.

    python benchmarks/_mdp_reference_broker.py --bind ENDPOINT
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import zmq

CLIENT = b"MDPC01"
WORKER = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
HEARTBEAT_INTERVAL = 2.5
HEARTBEAT_LIVENESS = 3


@dataclass(eq=False)
class Service:
    name: bytes
    requests: list[list[bytes]] = field(default_factory=list)
    idle: list[Worker] = field(default_factory=list)
    workers: int = 0


@dataclass(eq=False)
class Worker:
    identity: bytes
    service: Service
    expiry: float


class ReferenceBroker:
    def __init__(self, bind: str) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(bind)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.services: dict[bytes, Service] = {}
        self.workers: dict[bytes, Worker] = {}
        self.heartbeat_at = time.monotonic() + HEARTBEAT_INTERVAL
        self.running = True

    def mediate(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while self.running:
            if poller.poll(int(HEARTBEAT_INTERVAL * 1000)):
                message = self.socket.recv_multipart()
                if len(message) >= 3 and message[1] == b"":
                    sender, header, rest = message[0], message[2], message[3:]
                    if header == CLIENT and rest:
                        self.client_message(sender, rest)
                    elif header == WORKER and rest:
                        self.worker_message(sender, rest[0], rest[1:])
            self.purge_workers()
            self.send_heartbeats()
        self.socket.close()
        self.context.term()

    def client_message(self, sender: bytes, frames: list[bytes]) -> None:
        name, body = frames[0], frames[1:]
        if name.startswith(b"mmi."):
            known = self.services.get(body[0]) if body else None
            code = (
                b"501" if name != b"mmi.service" else b"200" if known and known.workers else b"404"
            )
            self.socket.send_multipart([sender, b"", CLIENT, name, code])
            return
        self.dispatch(self.require_service(name), [sender, b"", *body])

    def worker_message(self, sender: bytes, command: bytes, rest: list[bytes]) -> None:
        worker = self.workers.get(sender)
        if command == READY and rest:
            if worker is not None or rest[0].startswith(b"mmi."):
                self.delete_worker(sender, disconnect=True)
            else:
                worker = Worker(sender, self.require_service(rest[0]), 0.0)
                self.workers[sender] = worker
                worker.service.workers += 1
                self.worker_waiting(worker)
        elif command == REPLY and len(rest) >= 2:
            if worker is None:
                self.delete_worker(sender, disconnect=True)
                return
            client, body = rest[0], rest[2:]
            self.socket.send_multipart([client, b"", CLIENT, worker.service.name, *body])
            self.worker_waiting(worker)
        elif command == HEARTBEAT:
            if worker is None:
                self.delete_worker(sender, disconnect=True)
            else:
                worker.expiry = time.monotonic() + HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
        elif command == DISCONNECT:
            self.delete_worker(sender, disconnect=False)

    def require_service(self, name: bytes) -> Service:
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = Service(name)
        return service

    def worker_waiting(self, worker: Worker) -> None:
        worker.service.idle.append(worker)
        worker.expiry = time.monotonic() + HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
        self.dispatch(worker.service, None)

    def dispatch(self, service: Service, request: list[bytes] | None) -> None:
        if request is not None:
            service.requests.append(request)
        self.purge_workers()
        while service.idle and service.requests:
            worker = service.idle.pop(0)
            request = service.requests.pop(0)
            self.socket.send_multipart([worker.identity, b"", WORKER, REQUEST, *request])

    def delete_worker(self, identity: bytes, *, disconnect: bool) -> None:
        if disconnect:
            self.socket.send_multipart([identity, b"", WORKER, DISCONNECT])
        worker = self.workers.pop(identity, None)
        if worker is not None:
            worker.service.workers -= 1
            if worker in worker.service.idle:
                worker.service.idle.remove(worker)

    def purge_workers(self) -> None:
        now = time.monotonic()
        for worker in [w for w in self.workers.values() if w.expiry < now]:
            self.delete_worker(worker.identity, disconnect=False)

    def send_heartbeats(self) -> None:
        if time.monotonic() >= self.heartbeat_at:
            for identity in self.workers:
                self.socket.send_multipart([identity, b"", WORKER, HEARTBEAT])
            self.heartbeat_at = time.monotonic() + HEARTBEAT_INTERVAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", required=True)
    broker = ReferenceBroker(parser.parse_args().bind)

    def stop(signum: int, frame: FrameType | None) -> None:
        broker.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"reference broker listening on {broker.endpoint}", flush=True)
    broker.mediate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
