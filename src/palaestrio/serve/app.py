"""The app (API, page, OpenAPI) and `serve`, the HTTP server as a task of the executor.

Stack: Starlette (small, typed, runs on trio through anyio; its schema generator gives
the OpenAPI document without pydantic) under hypercorn's trio worker, so the server is
one more trio task in the executor's nursery: cancelling that nursery (^C, SIGTERM)
closes the listener and every connection with it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.typing import Framework
from hypercorn.utils import wrap_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from .api import Api
from .auth import Guard
from .events import EventHub

if TYPE_CHECKING:
    from palaestrio.executor import Executor

log = logging.getLogger("palaestrio.serve")

STATIC = files("palaestrio.serve") / "static"
BACKLOG = 128
OPENAPI_INFO = {"openapi": "3.0.0", "info": {"title": "palaestrio serve", "version": "1"}}


class _Schemas(SchemaGenerator):
    """OpenAPI from the endpoints' docstrings: the text before ``---`` is the summary
    and description, the YAML after it the operation."""

    def parse_docstring(self, func_or_method: Callable[..., Any]) -> dict[str, Any]:
        operation = super().parse_docstring(func_or_method)
        text = (func_or_method.__doc__ or "").split("---")[0].strip()
        if text:
            summary = text.split("\n", 1)[0]
            operation = {"summary": summary, "description": " ".join(text.split()), **operation}
        return operation


def build_app(executor: Executor, engine: sa.Engine, hub: EventHub, token: str | None) -> Guard:
    api = Api(executor, engine, hub)
    schemas = _Schemas(OPENAPI_INFO)
    static = str(STATIC)

    async def openapi(request: Request) -> Response:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    def page(name: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return FileResponse(f"{static}/{name}", headers={"cache-control": "no-cache"})

        return Route("/" if name == "index.html" else "/docs", endpoint, include_in_schema=False)

    app = Starlette(
        routes=[
            *api.routes(),
            Route("/openapi.json", openapi, include_in_schema=False),
            page("index.html"),
            page("docs.html"),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ]
    )
    return Guard(app, token)


def listening_sockets(host: str, port: int) -> Sockets:
    """Bound before any run starts, so a taken port fails fast and plainly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])


async def serve(
    app: Guard,
    sockets: Sockets,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves `app` on `sockets` until cancelled; started with the URLs it listens on."""
    config = Config()
    config.accesslog = None
    config.errorlog = log
    config.keep_alive_timeout = 30
    wrapped = wrap_app(cast(Framework, app), config.wsgi_max_body_size, "asgi")
    await worker_serve(wrapped, config, sockets=sockets, task_status=task_status)
