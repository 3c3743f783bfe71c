"""pyzmq sockets under trio.

There is no pyzmq backend for trio, so this adapter waits on the socket's `ZMQ_FD`
itself, which is subtle (trio-notes §1): the FD is edge-triggered, signals only
"readable" (for both directions) and *any* zmq call on the socket may consume its edge.
The rules this module follows:

* Every operation first tries the non-blocking call; it parks only after `zmq.Again`
  and after `zmq.EVENTS` says the wanted direction is still not ready.
* One task may send while another receives (like a trio stream). A second concurrent
  sender, or receiver, gets `trio.BusyResourceError` instead of a hang.
* Only one task at a time watches the FD (trio allows one waiter per fd); the other
  parks on an event. After every zmq call the watcher is woken, because that call may
  have eaten the edge it was waiting for, and everyone re-reads `zmq.EVENTS`.
* `close()` marks the socket closed, calls `trio.lowlevel.notify_closing` so a waiting
  task wakes with `trio.ClosedResourceError` at once, and closes with linger 0.
* Frames go through pyzmq's compiled `zmq.backend.Socket` calls with int flags, not its
  Python `send_multipart`/`recv_multipart`: those cost 3-5× more per message (measured
  here, benchmarks/mdp_broker.py), which is most of a broker's time per message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, cast, final

import trio
import zmq

from palaestrio import curve

__all__ = ["Socket", "new_socket", "open_socket", "recv_now", "send_now", "shared_context"]

_backend_send = zmq.backend.Socket.send
_backend_recv = zmq.backend.Socket.recv
_backend_get = zmq.backend.Socket.get
_NOBLOCK: Final = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE: Final = int(zmq.NOBLOCK | zmq.SNDMORE)
_RCVMORE: Final = int(zmq.RCVMORE)
_EVENTS: Final = int(zmq.EVENTS)
_POLLIN: Final = int(zmq.POLLIN)
_POLLOUT: Final = int(zmq.POLLOUT)


def send_now(raw: zmq.Socket[bytes], frames: Sequence[bytes]) -> None:
    """Sends all of `frames` or, with `zmq.Again`, none: a message's later frames are
    always taken once its first one is (zmq's multipart atomicity)."""
    last = len(frames) - 1
    if last < 0:
        raise ValueError("a zmq message has at least one frame")
    for index, frame in enumerate(frames):
        _backend_send(raw, frame, _NOBLOCK_SNDMORE if index < last else _NOBLOCK)


def recv_now(raw: zmq.Socket[bytes]) -> list[bytes]:
    """Receives one whole message, or raises `zmq.Again`."""
    frames: list[bytes] = [_backend_recv(raw, _NOBLOCK)]
    while _backend_get(raw, _RCVMORE):
        frames.append(_backend_recv(raw, _NOBLOCK))
    return frames


@final
class Socket:
    """A zmq socket used from trio. Make one with `open_socket`."""

    def __init__(self, raw: zmq.Socket[bytes]) -> None:
        self.raw: Final = raw
        self._fd: Final[int] = cast(int, raw.getsockopt(zmq.FD))
        self._closed = False
        self._sending = False
        self._receiving = False
        # The task that waits on the FD, if any; cancelled to make it re-check EVENTS.
        self._watch_scope: trio.CancelScope | None = None
        # Where a second waiting task parks while another watches the FD.
        self._parked = 0
        self._wakeup = trio.Event()

    # -- setup ---------------------------------------------------------------------

    def bind(self, endpoint: str) -> str:
        """Binds and returns the endpoint actually bound (resolves `tcp://...:*`)."""
        self._check_open()
        self.raw.bind(endpoint)
        return self.raw.getsockopt_string(zmq.LAST_ENDPOINT)

    def connect(self, endpoint: str) -> None:
        """Connects; with CURVE keys when some are registered for `endpoint`."""
        self._check_open()
        keys = curve.client_keys(endpoint)
        if keys is not None:
            keys.apply(self.raw)
        self.raw.connect(endpoint)

    # -- I/O -----------------------------------------------------------------------

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        """Sends one message; waits while the socket's send queue is full."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this socket")
        self._sending = True
        waited = False
        try:
            while True:
                try:
                    send_now(self.raw, frames)
                except zmq.Again:
                    waited = await self._wait_for(_POLLOUT) or waited
                else:
                    self._wake_others()
                    break
        finally:
            self._sending = False
        if not waited:
            # Every trio operation schedules; the message is out, so shield the yield.
            await trio.lowlevel.cancel_shielded_checkpoint()

    def try_send_multipart(self, frames: Sequence[bytes]) -> bool:
        """Sends one message if that is possible without waiting; says whether it did."""
        if self._closed or self._sending:
            return False
        try:
            send_now(self.raw, frames)
        except zmq.Again:
            return False
        self._wake_others()
        return True

    async def recv_multipart(self) -> list[bytes]:
        """Receives one message (all of its frames)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this socket")
        self._receiving = True
        waited = False
        try:
            while True:
                try:
                    frames = recv_now(self.raw)
                except zmq.Again:
                    waited = await self._wait_for(_POLLIN) or waited
                else:
                    self._wake_others()
                    break
        finally:
            self._receiving = False
        if not waited:
            # We hold the message: a cancellation at this yield must not drop it.
            await trio.lowlevel.cancel_shielded_checkpoint()
        return frames

    def try_recv_multipart(self) -> list[bytes] | None:
        """Receives one message if one is there now; None if not (no waiting).

        For a task that owns the socket and drains it in batches: no scheduler pass per
        message. Wait with `wait_recv` when it returns None.
        """
        if self._closed or self._receiving:
            return None
        try:
            frames = recv_now(self.raw)
        except zmq.Again:
            return None
        self._wake_others()
        return frames

    async def wait_recv(self) -> None:
        """Waits until a message can be received; always a checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this socket")
        self._receiving = True
        try:
            waited = await self._wait_for(_POLLIN)
        finally:
            self._receiving = False
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Closes at once (linger 0); tasks waiting on the socket get ClosedResourceError."""
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._fd)
        self._wakeup.set()
        self.raw.close(linger=0)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- waiting -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the zmq socket is closed")

    def _wake_others(self) -> None:
        # Our zmq call may have consumed the FD edge another task is waiting for.
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        if self._parked:
            self._wakeup.set()
            self._wakeup = trio.Event()

    async def _wait_for(self, flag: int) -> bool:
        """Waits until `flag` is in EVENTS; says whether it had to wait (a checkpoint)."""
        waited = False
        while True:
            events = cast(int, _backend_get(self.raw, _EVENTS))
            # Reading EVENTS (like the failed attempt before it) may have consumed the
            # edge the task waiting for the *other* direction needs: if its flag is set
            # now, wake it. Only then, so two waiters never wake each other in circles.
            other_waits = self._sending if flag == _POLLIN else self._receiving
            if other_waits and events & (_POLLOUT if flag == _POLLIN else _POLLIN):
                self._wake_others()
            if events & flag:
                return waited
            waited = True
            if self._watch_scope is None:
                try:
                    with trio.CancelScope() as self._watch_scope:
                        await trio.lowlevel.wait_readable(self._fd)
                finally:
                    self._watch_scope = None
                    # Whoever is parked must re-check, and may take over the watch.
                    if self._parked:
                        self._wakeup.set()
                        self._wakeup = trio.Event()
            else:
                self._parked += 1
                try:
                    await self._wakeup.wait()
                finally:
                    self._parked -= 1
            self._check_open()


_context: zmq.Context[zmq.Socket[bytes]] | None = None


def shared_context() -> zmq.Context[zmq.Socket[bytes]]:
    """One zmq context per process (one I/O thread), made on first use."""
    global _context
    if _context is None or _context.closed:
        _context = zmq.Context()
    return _context


def new_socket(
    socket_type: int, *, context: zmq.Context[zmq.Socket[bytes]] | None = None
) -> Socket:
    """A zmq socket of `socket_type`; the caller must `close()` it (see `open_socket`)."""
    raw = (context or shared_context()).socket(socket_type)
    raw.setsockopt(zmq.LINGER, 0)
    return Socket(raw)


@asynccontextmanager
async def open_socket(
    socket_type: int, *, context: zmq.Context[zmq.Socket[bytes]] | None = None
) -> AsyncIterator[Socket]:
    """A zmq socket of `socket_type`, closed (linger 0) when the block exits."""
    sock = new_socket(socket_type, context=context)
    try:
        yield sock
    finally:
        sock.close()
