"""Requests to the store until they are acknowledged: from trio, and from a thread.

`deliver` and `send_status` send from a trio task. The store sink (`sender.py`) sends
record batches from a thread of its own, so that records reach the store while the step
loop is busy or blocked in a component (a trio task would wait for the loop): in the
RunGovernor that thread has its own DEALER socket to the broker (`SocketRequester`);
with an in-process requester (tests, tools) it calls back into trio (`LoopRequester`).
`deliver_blocking` is `deliver` for the thread: the same resend rule, the same reading
of replies (`read_reply`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import trio
import zmq

from palaestrio import curve
from palaestrio.mdp import protocol as mdp
from palaestrio.status import RunStatus
from palaestrio.store import messages
from palaestrio.store.errors import RunNotOwned, StoreError, StoreRejected
from palaestrio.store.messages import SERVICE, Acknowledged, StatusEvent, StoreRequest
from palaestrio.zmq_trio import shared_context

log = logging.getLogger("palaestrio.store.sender")

DEFAULT_RETRY_AFTER = 5.0
FIRST_RETRY_PAUSE = 0.05
MAX_RETRY_PAUSE = 0.5
"""The longest pause before a retryable write is sent again: the store decides when to
give up (its write budget), and a stopping executor must hear that soon."""
HASTENED_PAUSE = 0.05
"""Between resends once the run is stopping (`deliver_blocking`'s `hasten`)."""
SERVICE_NAME = mdp.as_service(SERVICE)
POLL_SLICE = 0.05
"""Seconds between two looks at the abandon flag while a reply is awaited."""


class Abandoned(Exception):
    """The sink gave up on the batch (its close grace ran out)."""


def read_reply(frames: list[bytes]) -> Acknowledged | str:
    """The store's acknowledgement, or the reason of a retryable refusal; raises
    `RunNotOwned`, `StoreRejected` or `StoreError` for the others."""
    if len(frames) != 1:
        raise StoreError(f"the store replied with {len(frames)} frames instead of one")
    try:
        reply = messages.decode_reply(frames[0])
    except msgspec.DecodeError as error:
        raise StoreError(f"malformed reply from the store: {error}") from None
    if isinstance(reply, Acknowledged):
        return reply
    if reply.not_owned:
        raise RunNotOwned(reply.message)
    if not reply.retryable:
        raise StoreRejected(reply.message)
    return reply.message


class BlockingRequester(Protocol):
    def request(self, frame: bytes, timeout: float, abandon: threading.Event) -> list[bytes] | None:
        """The reply's body frames, or None after `timeout` seconds without one; raises
        `Abandoned` soon after `abandon` is set."""

    def close(self) -> None: ...


class SocketRequester:
    """MDP client requests over a DEALER socket of the calling thread's own.

    Made and used in that thread only (zmq sockets are not thread-safe). A request
    without a reply closes its socket: a late reply then cannot pass for the next one.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._socket: zmq.Socket[bytes] | None = None

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            raw = shared_context().socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            keys = curve.client_keys(self.endpoint)
            if keys is not None:
                keys.apply(raw)
            raw.connect(self.endpoint)
            self._socket = raw
        return self._socket

    def request(self, frame: bytes, timeout: float, abandon: threading.Event) -> list[bytes] | None:
        sock = self._connected()
        sock.send_multipart([b"", mdp.CLIENT, SERVICE_NAME, frame], copy=False)
        deadline = time.monotonic() + timeout
        while not abandon.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                return None
            if sock.poll(round(min(remaining, POLL_SLICE) * 1000) + 1, zmq.POLLIN):
                reply = sock.recv_multipart()
                if len(reply) >= 3 and not reply[0] and reply[1:3] == [mdp.CLIENT, SERVICE_NAME]:
                    return reply[3:]
                log.warning("the store sink dropped a malformed reply (%d frames)", len(reply))
        self.close()
        raise Abandoned

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class AsyncRequester(Protocol):
    """What the sender needs of an MDP client (`palaestrio.mdp.client.Client`)."""

    async def request(self, service: str | bytes, *frames: bytes) -> list[bytes]: ...


async def deliver(
    client: AsyncRequester, message: StoreRequest, *, retry_after: float = DEFAULT_RETRY_AFTER
) -> Acknowledged:
    """Sends `message` to the store until it is acknowledged.

    Resends after `retry_after` seconds without a reply and, with a growing pause, after
    a retryable error reply. Raises `RunNotOwned` when the store does not own the run
    instance and `StoreRejected` for any other error reply.
    """
    frame = messages.encode(message)
    pause = FIRST_RETRY_PAUSE
    while True:
        frames: list[bytes] | None = None
        with trio.move_on_after(retry_after):
            frames = await client.request(SERVICE, frame)
        if frames is None:
            log.info("no reply from the store within %.1f s; sending again", retry_after)
            continue
        reply = read_reply(frames)
        if isinstance(reply, Acknowledged):
            return reply
        log.warning("the store could not write now (%s); trying again", reply)
        await trio.sleep(pause)
        pause = min(pause * 2, retry_after, MAX_RETRY_PAUSE)


async def send_status(
    client: AsyncRequester, event: StatusEvent, *, retry_after: float = DEFAULT_RETRY_AFTER
) -> RunStatus:
    """Records a status event; returns the instance's status afterwards.

    A duplicate or late event changes nothing, and the returned status shows it (e.g.
    `error` after `finished` returns `RunStatus.FINISHED`).
    """
    return status_of(await deliver(client, event, retry_after=retry_after))


def status_of(reply: Acknowledged) -> RunStatus:
    if reply.status is None:
        raise StoreError("the store acknowledged a status event without the status")
    return reply.status


class LoopRequester:
    """Requests through a trio `AsyncRequester`, run in the sink's trio loop."""

    def __init__(self, client: AsyncRequester, token: trio.lowlevel.TrioToken) -> None:
        self._client = client
        self._token = token

    def request(self, frame: bytes, timeout: float, abandon: threading.Event) -> list[bytes] | None:
        if abandon.is_set():
            raise Abandoned

        async def attempt() -> list[bytes] | None:
            with trio.move_on_after(timeout):
                return await self._client.request(SERVICE, frame)
            return None

        try:
            return trio.from_thread.run(attempt, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):  # the loop is ending
            raise Abandoned from None

    def close(self) -> None:
        return None


def deliver_blocking(
    requester: BlockingRequester,
    frame: bytes,
    *,
    retry_after: float,
    abandon: threading.Event,
    hasten: threading.Event | None = None,
) -> Acknowledged:
    """Sends the encoded request `frame` until the store acknowledges it (see
    `sender.deliver`); raises `Abandoned` soon after `abandon` is set.

    `hasten` (set with `abandon` too): the run is stopping. A stopping executor's store
    fails at the first write it cannot make, so the pause before a resend ends at once
    and later ones are short: ^C must not wait out a pause grown while the disk was full.
    """
    pause = FIRST_RETRY_PAUSE
    while True:
        frames = requester.request(frame, retry_after, abandon)
        if frames is None:
            log.info("no reply from the store within %.1f s; sending again", retry_after)
            continue
        reply = read_reply(frames)
        if isinstance(reply, Acknowledged):
            return reply
        log.warning("the store could not write now (%s); trying again", reply)
        if hasten is None:
            abandon.wait(pause)
        elif hasten.is_set():
            abandon.wait(HASTENED_PAUSE)
        else:
            hasten.wait(pause)
        if abandon.is_set():
            raise Abandoned
        pause = min(pause * 2, retry_after, MAX_RETRY_PAUSE)


def call_soon_in_loop(token: trio.lowlevel.TrioToken, callback: Callable[[], object]) -> None:
    """Runs `callback` in the trio loop of `token`, unless that loop has ended."""
    with contextlib.suppress(trio.RunFinishedError):
        token.run_sync_soon(callback)
