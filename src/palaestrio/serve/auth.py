"""Who may talk to the server, and how much: a bearer token on every request and a limit
on request bodies, as one ASGI middleware in front of the app.

The token comes as ``Authorization: Bearer TOKEN``; a browser opens the URL `serve`
prints (``/?token=TOKEN``) once, gets it as an HttpOnly, SameSite=Strict cookie and is
redirected to ``/``, so the token leaves the address bar and other sites cannot use it.
Tokens are compared with `hmac.compare_digest` (no timing leak).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "palaestrio_token"
TOKEN_ENV = "PALAESTRIO_SERVE_TOKEN"
MAX_BODY_BYTES = 1024 * 1024
"""Request bodies larger than this are refused (413): run files are a few KiB."""


class BodyTooLarge(Exception):
    """A request body went past the limit while it was read."""


def generate_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(bind: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) → (host, port); ValueError naming the problem."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--bind {bind!r}: expected HOST:PORT, such as 127.0.0.1:4247")
    return host.strip("[]"), int(port)


def token_of(scope: Scope) -> str | None:
    """The token a request carries: header, then cookie, then ``?token=``."""
    headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    if COOKIE in cookie:
        return str(cookie[COOKIE].value)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query["token"][0] if "token" in query else None


class Guard:
    """Refuses requests without the token (401) or with a declared body over the limit
    (413); counts the bytes of bodies sent without a length and stops at the limit."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = token_of(scope)
        if self.token is not None and (
            given is None or not hmac.compare_digest(given.encode(), self.token.encode())
        ):
            await _reply(
                send,
                401,
                "missing or wrong token: send 'Authorization: Bearer TOKEN'"
                " (serve printed it), or open the URL serve printed",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, f"request body larger than {self.max_body} bytes")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["path"] == "/" and "token" in query and given is not None:
            await _set_cookie(send, given)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise BodyTooLarge(f"request body larger than {self.max_body} bytes")
            return message

        return limited


async def _reply(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _set_cookie(send: Send, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", b"/"), (b"set-cookie", cookie), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
