"""A plain, blocking-pyzmq MDP/0.1 client and worker, written from the text of ZeroMQ
RFC 7 (rfc.zeromq.org/spec:7/MDP) and RFC 8 (8/MMI) only, never from palaestrio's code.

They exist so the interop tests catch a bug that palaestrio's own client, worker and
broker share: these peers build and check every frame exactly as the RFC lists them.

Run as a script it is an echo worker or a one-shot client:

    python tests/mdp_plain.py worker --connect ENDPOINT --service NAME [--heartbeat-interval S]
    python tests/mdp_plain.py client --connect ENDPOINT --service NAME BODY...
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType

import zmq

# RFC 7, "MDP/Client" and "MDP/Worker".
MDPC01 = b"MDPC01"
MDPW01 = b"MDPW01"
READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

Handler = Callable[[list[bytes]], list[bytes]]


class ProtocolViolation(Exception):
    """The broker sent something RFC 7 does not allow."""


class PlainClient:
    """MDP/Client over a REQ socket (the RFC's SHOULD) or a DEALER (its MAY).

    A REQ socket is stuck after a lost reply, so on a timeout the socket is replaced
    (the RFC's recommended recovery: close it and open a new one).
    """

    def __init__(self, endpoint: str, *, use_dealer: bool = False) -> None:
        self.endpoint = endpoint
        self.use_dealer = use_dealer
        self._context = zmq.Context()
        self._socket = self._open()

    def _open(self) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._context.socket(zmq.DEALER if self.use_dealer else zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def request(self, service: bytes, *body: bytes, timeout: float = 5.0) -> list[bytes]:
        """Sends one REQUEST and returns the REPLY's body (frames 3+).

        Raises TimeoutError when no reply comes within `timeout` seconds and
        ProtocolViolation when the reply is not a well-formed REPLY for `service`.
        """
        # REQUEST, frames 1..3+ (a REQ socket adds the empty frame 0 itself).
        frames = [MDPC01, service, *body]
        if self.use_dealer:
            frames.insert(0, b"")
        self._socket.send_multipart(frames)
        if not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            self._socket.close()
            self._socket = self._open()
            raise TimeoutError(f"no reply from {service!r} within {timeout} s")
        reply = self._socket.recv_multipart()
        if self.use_dealer:
            if not reply or reply[0] != b"":
                raise ProtocolViolation(f"REPLY frame 0 is not empty: {reply!r}")
            reply = reply[1:]
        # REPLY: "MDPC01", service name, body; "4 or more frames" including frame 0.
        if len(reply) < 3:
            raise ProtocolViolation(f"REPLY has fewer than 4 frames: {reply!r}")
        if reply[0] != MDPC01:
            raise ProtocolViolation(f"REPLY frame 1 is {reply[0]!r}, not MDPC01")
        if reply[1] != service:
            raise ProtocolViolation(f"REPLY names service {reply[1]!r}, asked {service!r}")
        return reply[2:]

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> PlainClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def echo(body: list[bytes]) -> list[bytes]:
    return body


class PlainWorker:
    """MDP/Worker over one DEALER socket, driven by `run(stop)` in its own thread.

    Handler calls block the loop, so no heartbeats go out while a handler runs (as in
    the Guide's reference worker); keep handlers short.
    """

    def __init__(
        self,
        endpoint: str,
        service: bytes,
        handler: Handler = echo,
        *,
        heartbeat_interval: float = 2.5,
        heartbeat_liveness: int = 3,
    ) -> None:
        self.endpoint = endpoint
        self.service = service
        self.handler = handler
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_liveness = heartbeat_liveness
        self.ready = threading.Event()  # set once the first READY is sent
        self.requests: list[list[bytes]] = []  # request bodies, in arrival order
        self.connections = 0  # READYs sent, i.e. (re)connections
        self.disconnects_received = 0
        self.violations: list[list[bytes]] = []  # malformed messages from the broker

    def _connect(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        sock.send_multipart([b"", MDPW01, READY, self.service])
        self.connections += 1
        self.ready.set()
        return sock

    def run(self, stop: threading.Event) -> None:
        """Serves until `stop` is set, then sends DISCONNECT and closes."""
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = self._connect(context)
        try:
            heard_at = time.monotonic()
            next_heartbeat = heard_at + self.heartbeat_interval
            while not stop.is_set():
                wait = max(0.0, min(0.02, next_heartbeat - time.monotonic()))
                if sock.poll(int(wait * 1000), zmq.POLLIN):
                    message = sock.recv_multipart()
                    heard_at = time.monotonic()
                    if not self._handle(sock, message):
                        # DISCONNECT: "MUST close its socket, and reconnect ... on a new socket".
                        sock.close()
                        sock = self._connect(context)
                        next_heartbeat = time.monotonic() + self.heartbeat_interval
                        continue
                now = time.monotonic()
                if now - heard_at > self.heartbeat_interval * self.heartbeat_liveness:
                    sock.close()
                    sock = self._connect(context)
                    heard_at = now
                    next_heartbeat = now + self.heartbeat_interval
                elif now >= next_heartbeat:
                    sock.send_multipart([b"", MDPW01, HEARTBEAT])
                    next_heartbeat = now + self.heartbeat_interval
            sock.send_multipart([b"", MDPW01, DISCONNECT])
            # Give the DISCONNECT a moment to leave before the socket goes.
            sock.close(linger=500)
        finally:
            if not sock.closed:
                sock.close(linger=0)
            context.term()

    def _handle(self, sock: zmq.Socket[bytes], message: list[bytes]) -> bool:
        """Processes one broker command; False means the broker sent DISCONNECT."""
        if len(message) < 3 or message[0] != b"" or message[1] != MDPW01:
            self.violations.append(message)
            return True
        command = message[2]
        if command == REQUEST:
            # Frame 3: client address, frame 4: empty, frames 5+: body.
            if len(message) < 5 or message[4] != b"":
                self.violations.append(message)
                return True
            client, body = message[3], message[5:]
            self.requests.append(body)
            reply = self.handler(body)
            sock.send_multipart([b"", MDPW01, REPLY, client, b"", *reply])
        elif command == DISCONNECT:
            self.disconnects_received += 1
            return False
        elif command != HEARTBEAT or len(message) != 3:
            self.violations.append(message)
        return True


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="mdp_plain")
    parser.add_argument("role", choices=["worker", "client"])
    parser.add_argument("--connect", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--heartbeat-interval", type=float, default=2.5)
    parser.add_argument("--heartbeat-liveness", type=int, default=3)
    parser.add_argument("body", nargs="*")
    args = parser.parse_args(argv)
    service = args.service.encode()
    if args.role == "client":
        with PlainClient(args.connect) as client:
            reply = client.request(service, *(part.encode() for part in args.body))
        print(" ".join(part.decode(errors="replace") for part in reply), flush=True)
        return 0

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = PlainWorker(
        args.connect,
        service,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_liveness=args.heartbeat_liveness,
    )
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    worker.ready.wait()
    print("plain worker ready", flush=True)
    while runner.is_alive():
        runner.join(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
