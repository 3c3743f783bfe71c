"""CURVE (ZeroMQ RFC 26) for a broker that governors on other machines reach over TCP.

The executor makes one server key pair per broker and one client key pair per peer: its
own sockets, and each governor (whose key is revoked when its run ends, so a governor
that outlives its run cannot come back). Keys travel to a governor in its environment,
never in argv (which `ps` shows to everyone), and the governor takes them out of its
environment before it starts anything.

A socket that connects to an endpoint with registered client keys uses them
(`zmq_trio.Socket.connect` asks `client_keys`): the MDP client, worker and store sink
need not know about CURVE.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import zmq
from zmq.utils import z85

from palaestrio.errors import PalaestrioError

SERVER_KEY_VARIABLE = "PALAESTRIO_CURVE_SERVER_KEY"
PUBLIC_KEY_VARIABLE = "PALAESTRIO_CURVE_PUBLIC_KEY"
SECRET_KEY_VARIABLE = "PALAESTRIO_CURVE_SECRET_KEY"
_VARIABLES = (SERVER_KEY_VARIABLE, PUBLIC_KEY_VARIABLE, SECRET_KEY_VARIABLE)


class InsecureEndpoint(PalaestrioError):
    """Plain TCP on an interface other machines can reach, without `insecure`."""


@dataclass(frozen=True)
class ClientKeys:
    """What a peer needs to reach a CURVE broker (keys in Z85, as zmq makes them)."""

    server: bytes
    public: bytes
    secret: bytes

    def environment(self) -> dict[str, str]:
        values = (self.server, self.public, self.secret)
        return {name: value.decode() for name, value in zip(_VARIABLES, values, strict=True)}

    @classmethod
    def pop_environment(cls, environ: MutableMapping[str, str]) -> ClientKeys | None:
        """The keys in `environ`, removed from it (children must not inherit them)."""
        values = [environ.pop(name, None) for name in _VARIABLES]
        if not all(values):
            return None
        server, public, secret = (value.encode() for value in values if value)
        return cls(server, public, secret)

    def apply(self, raw: zmq.Socket[bytes]) -> None:
        raw.curve_serverkey = self.server
        raw.curve_publickey = self.public
        raw.curve_secretkey = self.secret


@dataclass
class CurveServer:
    """A broker's key pair and the client keys it admits (checked by its ZAP handler)."""

    public: bytes
    secret: bytes
    admitted: set[bytes] = field(default_factory=set)

    @classmethod
    def generate(cls) -> CurveServer:
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    def admit(self) -> ClientKeys:
        """A fresh client key pair that this broker accepts until `revoke`."""
        public, secret = zmq.curve_keypair()
        self.admitted.add(public)
        return ClientKeys(self.public, public, secret)

    def revoke(self, keys: ClientKeys) -> None:
        self.admitted.discard(keys.public)

    def is_admitted(self, binary_public_key: bytes) -> bool:
        """ZAP hands over the 32-byte binary key; we keep Z85 text."""
        return z85_text(binary_public_key) in self.admitted

    def apply(self, raw: zmq.Socket[bytes]) -> None:
        raw.curve_server = True
        raw.curve_secretkey = self.secret
        raw.zap_domain = b"palaestrio"


# Typed here: pyzmq 26 (which palaestrAI's extra installs) leaves it untyped, 27 not.
_z85_encode: Callable[[bytes], bytes] = z85.encode


def z85_text(binary_key: bytes) -> bytes:
    return bytes(_z85_encode(binary_key))


_client_keys: dict[str, ClientKeys] = {}


def client_keys(endpoint: str) -> ClientKeys | None:
    return _client_keys.get(endpoint)


@contextmanager
def registered(endpoint: str, keys: ClientKeys) -> Iterator[None]:
    """Sockets of this process that connect to `endpoint` use `keys` in the block."""
    _client_keys[endpoint] = keys
    try:
        yield
    finally:
        if _client_keys.get(endpoint) is keys:
            del _client_keys[endpoint]


def register_from_environment(endpoint: str) -> bool:
    """For a governor: takes the keys out of its environment; says if there were any."""
    keys = ClientKeys.pop_environment(os.environ)
    if keys is not None:
        _client_keys[endpoint] = keys
    return keys is not None


def routable_bind() -> str:
    """A TCP endpoint other machines reach this one at: Slurm's idea of this node's
    address where there is one, else what this host's name resolves to."""
    address = os.environ.get("SLURM_LAUNCH_NODE_IPADDR") or socket.gethostbyname(
        socket.gethostname()
    )
    return f"tcp://{address}:*"


def is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def is_loopback(endpoint: str) -> bool:
    """Whether a TCP endpoint can be reached from this machine only."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def check_plain(endpoint: str, *, insecure: bool) -> None:
    """Refuses plain TCP that other machines can reach, unless the user said so."""
    if is_tcp(endpoint) and not is_loopback(endpoint) and not insecure:
        raise InsecureEndpoint(
            f"refusing plain TCP on {endpoint}: anyone who reaches it could drive the "
            "runs; use CURVE (the default for such endpoints) or say --insecure"
        )
