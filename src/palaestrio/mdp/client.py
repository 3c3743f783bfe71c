"""The MDP/0.1 client: ``await client.request(service, *frames) -> list[bytes]``.

How replies reach the right caller: MDP/0.1 carries no request id, and a broker
routes a reply to the client *socket* that sent the request. So the client keeps a pool
of DEALER sockets and each request has a socket to itself for its whole round trip;
the reply arriving on that socket is the reply to that request. Sockets are reused
after a completed round trip. A request abandoned before its reply (cancelled, e.g. by
the caller's ``move_on_after``) closes its socket instead, so a late reply can never be
taken for the answer to a later request. The number of sockets grows to the number of
requests in flight at once.

The client speaks plain MDP/0.1 and needs nothing from the broker or the worker beyond
it. It has no timeout of its own: wrap ``request`` in ``trio.move_on_after`` or
``trio.fail_after``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import zmq

from palaestrio.mdp import protocol as mdp
from palaestrio.zmq_trio import Socket, new_socket

log = logging.getLogger(__name__)


class Client:
    """An MDP client connected to one broker. Make one with `open_client`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._idle: list[Socket] = []
        self._open: set[Socket] = set()
        self._closed = False

    async def request(self, service: str | bytes, *frames: bytes) -> list[bytes]:
        """Sends one request to `service` and returns the reply's body frames."""
        service_name = mdp.as_service(service)
        sock = self._idle.pop() if self._idle else self._new_socket()
        completed = False
        try:
            request = [b"", mdp.CLIENT, service_name, *frames]
            if not sock.try_send_multipart(request):  # the receive below checkpoints
                await sock.send_multipart(request)
            while True:
                reply = await sock.recv_multipart()
                if len(reply) >= 3 and not reply[0] and reply[1:3] == [mdp.CLIENT, service_name]:
                    completed = True
                    return reply[3:]
                log.warning("client dropped a malformed reply (%d frames)", len(reply))
        finally:
            if completed:
                self._idle.append(sock)
            else:
                self._open.discard(sock)
                sock.close()

    def _new_socket(self) -> Socket:
        if self._closed:
            raise trio.ClosedResourceError("the MDP client is closed")
        sock = new_socket(zmq.DEALER)
        self._open.add(sock)
        sock.connect(self.endpoint)
        return sock

    def close(self) -> None:
        """Closes every socket; requests in flight fail with ClosedResourceError."""
        self._closed = True
        for sock in self._open:
            sock.close()
        self._open.clear()
        self._idle.clear()


@asynccontextmanager
async def open_client(endpoint: str) -> AsyncIterator[Client]:
    """A client of the broker at `endpoint`; every socket it opened closes on exit."""
    client = Client(endpoint)
    try:
        yield client
    finally:
        client.close()
