"""The store service: an MDP worker for service "store" that writes what it receives.

Each request is decoded and written in one transaction by a `StoreWriter` in a worker
thread (one at a time: a limiter of 1 over one connection), so database writes never
block the trio loop; the reply goes out only after the commit. Every failure becomes an
error reply naming the problem, and the service goes on serving the other runs.
"""

from __future__ import annotations

import logging
from functools import partial

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
import trio

from palaestrio.mdp.worker import serve_worker
from palaestrio.store import messages
from palaestrio.store.engine import create_database, open_database
from palaestrio.store.errors import RequestRejected, StoreError
from palaestrio.store.messages import SERVICE, Rejected, StoreReply
from palaestrio.store.writer import StoreWriter

log = logging.getLogger(__name__)

CLOSE_GRACE = 10.0
"""Seconds a cancelled service waits for the write in progress and the disconnect."""


class StoreService:
    """Turns request frames into committed rows and reply frames."""

    def __init__(self, writer: StoreWriter) -> None:
        self._writer = writer
        self._limiter = trio.CapacityLimiter(1)

    async def handle(self, frames: list[bytes]) -> list[bytes]:
        """The MDP handler: never raises for a bad request or a database error."""
        reply = await trio.to_thread.run_sync(self._apply, frames, limiter=self._limiter)
        return [reply]

    async def aclose(self) -> None:
        """Waits for the write in progress, then closes the connection."""
        await trio.to_thread.run_sync(self._writer.close, limiter=self._limiter)

    def _apply(self, frames: list[bytes]) -> bytes:
        return messages.encode(self.apply_frames(frames))

    def apply_frames(self, frames: list[bytes]) -> StoreReply:
        """Decodes and applies one request (blocking; run in a worker thread)."""
        if len(frames) != 1:
            return Rejected(f"a store request is one frame, this one has {len(frames)}")
        try:
            request = messages.decode_request(frames[0])
        except msgspec.DecodeError as error:
            return Rejected(f"malformed store request: {error}")
        where = _describe(request)
        try:
            return self._writer.apply(request)
        except RequestRejected as error:
            log.warning("rejected %s: %s", where, error)
            return Rejected(f"{where} rejected: {error}")
        except sqlalchemy.exc.DBAPIError as error:
            retryable = isinstance(error, sqlalchemy.exc.OperationalError | sa.exc.InterfaceError)
            reason = str(error.orig).strip() if error.orig else str(error)
            log.warning("could not write %s (retryable: %s): %s", where, retryable, reason)
            return Rejected(f"{where} not written: {reason}", retryable=retryable)
        except Exception as error:
            log.exception("could not write %s", where)
            return Rejected(f"{where} not written: {type(error).__name__}: {error}")


def _describe(request: messages.StoreRequest) -> str:
    if isinstance(request, messages.RecordBatch):
        return (
            f"batch {request.sequence} ({len(request.records)} records) of run instance "
            f"{request.instance_uid!r}"
        )
    tag = type(request).__struct_config__.tag
    return f"status {tag!r} of run instance {request.instance_uid!r}"


async def serve(
    store_uri: str,
    broker_endpoint: str,
    *,
    create: bool = False,
    heartbeat_interval: float = 2.5,
    heartbeat_liveness: int = 3,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves the store at `broker_endpoint` until cancelled.

    The database is opened (and with `create=True` first created) before anything else:
    a bad URI, an unreachable server or a missing or foreign database raises
    `StoreError` before `task_status.started()`. Started means the broker has been
    sent READY.
    """
    if create:
        await trio.to_thread.run_sync(create_database, store_uri)
    engine = await trio.to_thread.run_sync(partial(open_database, store_uri, immediate=True))
    service = StoreService(StoreWriter(engine))
    try:
        await serve_worker(
            broker_endpoint,
            SERVICE,
            service.handle,
            heartbeat_interval=heartbeat_interval,
            heartbeat_liveness=heartbeat_liveness,
            task_status=task_status,
        )
    finally:
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            await service.aclose()


__all__ = ["SERVICE", "StoreError", "StoreService", "serve"]
