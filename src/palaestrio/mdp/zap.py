"""A ZAP (ZeroMQ RFC 27) handler for a CURVE broker, as a trio task.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` *in the broker socket's
context* about every CURVE handshake. A trio task instead of pyzmq's ThreadAuthenticator:
the admitted keys are a plain set changed from trio (no locking, no thread to stop), the
handler lives and dies in the broker's nursery, and a refused key is logged once (a zmq
peer reconnects every few hundred milliseconds; a line per attempt would flood the log).
Each broker gets a context of its own, so several brokers in one process (tests) each
have their handler.
"""

from __future__ import annotations

import logging

from palaestrio.curve import CurveServer, z85_text
from palaestrio.zmq_trio import Socket

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
log = logging.getLogger("palaestrio.mdp.broker")


async def serve_zap(sock: Socket, server: CurveServer) -> None:
    """Answers ZAP requests on `sock` (a REP socket bound at `ZAP_ENDPOINT`) until
    cancelled."""
    refused: set[bytes] = set()
    while True:
        request = await sock.recv_multipart()
        if len(request) < 6:
            log.warning("dropped a malformed ZAP request (%d frames)", len(request))
            continue
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        key = request[6] if len(request) > 6 else b""
        if mechanism == b"CURVE" and server.is_admitted(key):
            reply = [b"200", b"OK", z85_text(key)]
        else:
            reply = [b"400", b"unknown key", b""]
            if key not in refused:
                refused.add(key)
                log.warning(
                    "broker refused a %s peer from %s: its key is not one this executor gave out",
                    mechanism.decode(errors="replace"),
                    address.decode(errors="replace"),
                )
        await sock.send_multipart([version, request_id, *reply, b""])
