"""MDP/0.1 frames and commands (ZeroMQ RFC 7).

Client to broker, over a DEALER: ``[b"", CLIENT, service, *body]``; the broker answers
``[b"", CLIENT, service, *body]``. Worker and broker exchange
``[b"", WORKER, command, ...]``:

* READY      ``[service]``                      worker → broker
* REQUEST    ``[client, b"", *body]``           broker → worker
* REPLY      ``[client, b"", *body]``           worker → broker
* HEARTBEAT  ``[]``                             both ways
* DISCONNECT ``[]``                             both ways

On the broker's ROUTER every message is prefixed with the peer's routing identity.
"""

from __future__ import annotations

from typing import Final

from palaestrio.errors import PalaestrioError

CLIENT: Final = b"MDPC01"
WORKER: Final = b"MDPW01"

READY: Final = b"\x01"
REQUEST: Final = b"\x02"
REPLY: Final = b"\x03"
HEARTBEAT: Final = b"\x04"
DISCONNECT: Final = b"\x05"

COMMAND_NAMES: Final = {
    READY: "READY",
    REQUEST: "REQUEST",
    REPLY: "REPLY",
    HEARTBEAT: "HEARTBEAT",
    DISCONNECT: "DISCONNECT",
}

MMI_PREFIX: Final = b"mmi."
MMI_SERVICE: Final = b"mmi.service"

DEFAULT_HEARTBEAT_INTERVAL: Final = 2.5
DEFAULT_HEARTBEAT_LIVENESS: Final = 3


def as_service(name: str | bytes) -> bytes:
    """Service names travel as bytes; callers may give str."""
    return name.encode() if isinstance(name, str) else name


class ProtocolError(ValueError):
    """A message that does not follow MDP/0.1; the text says what is wrong."""


class BrokerLost(PalaestrioError):
    """A worker told not to reconnect lost its broker: silent too long, or DISCONNECT."""
