"""palaestrio's MDP client and worker.

Client: replies reach the right caller, also out of order and after a cancelled request.
Worker: checked frame by frame against a hand-driven ROUTER standing in for the broker
(READY, heartbeats while idle and while a handler runs, reconnects, DISCONNECT), and
end to end through the real broker and as the `python -m palaestrio.mdp.worker` process;
with `reconnect=False` (test_mdp_worker_lost_broker.py) a lost broker ends it.
"""

from __future__ import annotations

import signal
from functools import partial

import pytest
import trio
import zmq

from mdp_plain import DISCONNECT, HEARTBEAT, MDPC01, MDPW01, READY, REPLY, REQUEST
from mdp_support import (  # noqa: F401
    collect_garbage_in_test,
    echo_handler,
    fake_broker,
    next_command,
    python,
    running_broker,
    running_process,
    running_worker,
)
from palaestrio.mdp.client import Client, open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.zmq_trio import open_socket

FAST = {"heartbeat_interval": 0.1, "heartbeat_liveness": 3}
# Expiry after 1 s: still short, but a loaded 2-core machine can stall a process for
# more than 0.3 s, which FAST would rightly count as a dead worker.
STEADY = {"heartbeat_interval": 0.2, "heartbeat_liveness": 5}


# --- client -----------------------------------------------------------------------------


async def test_request_returns_only_the_reply_body() -> None:
    async def handler(body: list[bytes]) -> list[bytes]:
        return [b"one", b"", b"three"]

    with trio.fail_after(10):
        async with (
            running_broker() as endpoint,
            running_worker(endpoint, "shape", handler),
            open_client(endpoint) as client,
        ):
            assert await client.request("shape", b"x") == [b"one", b"", b"three"]
            assert await client.request(b"shape", b"y", b"z") == [b"one", b"", b"three"]


async def test_replies_reach_the_right_caller_when_they_come_back_out_of_order() -> None:
    """Later requests finish first, so matching replies to callers in send order fails."""
    count = 6

    async def handler(body: list[bytes]) -> list[bytes]:
        await trio.sleep((count - int(body[0])) * 0.05)
        return [b"re:" + body[0]]

    replies: dict[int, list[bytes]] = {}
    finished: list[int] = []
    with trio.fail_after(20):
        async with running_broker() as endpoint, trio.open_nursery() as workers:
            for _ in range(count):
                await workers.start(partial(serve_worker, endpoint, "sorter", handler))
            async with open_client(endpoint) as client:

                async def ask(index: int) -> None:
                    replies[index] = await client.request("sorter", b"%d" % index)
                    finished.append(index)

                async with trio.open_nursery() as nursery:
                    for index in range(count):
                        nursery.start_soon(ask, index)
                        await trio.sleep(0.01)  # send in index order
            workers.cancel_scope.cancel()
    assert replies == {index: [b"re:%d" % index] for index in range(count)}
    assert finished != sorted(finished), "replies did not come back out of order"


async def test_late_reply_to_a_cancelled_request_does_not_reach_the_next_caller() -> None:
    async def handler(body: list[bytes]) -> list[bytes]:
        if body == [b"slow"]:
            await trio.sleep(0.5)
        return body

    with trio.fail_after(20):
        async with (
            running_broker() as endpoint,
            running_worker(endpoint, "one-worker", handler),
            open_client(endpoint) as client,
        ):
            with trio.move_on_after(0.1) as gave_up:
                await client.request("one-worker", b"slow")
            assert gave_up.cancelled_caught
            # The only worker answers "slow" first and then this request.
            assert await client.request("one-worker", b"fast") == [b"fast"]
            async with trio.open_nursery() as nursery:
                for index in range(5):
                    nursery.start_soon(_expect_echo, client, b"after-%d" % index)


async def _expect_echo(client: Client, body: bytes) -> None:
    assert await client.request("one-worker", body) == [body]


# --- worker through the broker -------------------------------------------------------------


async def test_worker_serves_one_request_at_a_time() -> None:
    running = 0
    peak = 0

    async def handler(body: list[bytes]) -> list[bytes]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.02)
        running -= 1
        return body

    with trio.fail_after(20):
        async with (
            running_broker() as endpoint,
            running_worker(endpoint, "single", handler),
            open_client(endpoint) as client,
            trio.open_nursery() as nursery,
        ):
            for index in range(10):
                nursery.start_soon(client.request, "single", b"%d" % index)
    assert peak == 1


async def test_a_long_request_is_not_taken_for_a_dead_worker() -> None:
    """The handler runs four times the broker's expiry time; heartbeats keep flowing."""
    calls = 0

    async def handler(body: list[bytes]) -> list[bytes]:
        nonlocal calls
        calls += 1
        await trio.sleep(4.0)
        return [b"finally", *body]

    with trio.fail_after(20):
        async with (
            running_broker(**STEADY) as endpoint,
            running_worker(endpoint, "slowpoke", handler, **STEADY),
            open_client(endpoint) as client,
        ):
            assert await client.request("slowpoke", b"x") == [b"finally", b"x"]
            assert await client.request("mmi.service", b"slowpoke") == [b"200"]
    assert calls == 1


async def test_handler_exception_propagates_out_of_serve_worker() -> None:
    async def handler(body: list[bytes]) -> list[bytes]:
        raise ValueError(f"cannot handle {body!r}")

    with trio.fail_after(10):
        async with (
            running_broker() as endpoint,
            open_client(endpoint) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(client.request, "fragile", b"boom")
            with pytest.raises(ValueError, match="cannot handle"):
                await serve_worker(endpoint, "fragile", handler)
            nursery.cancel_scope.cancel()


async def test_worker_process_echoes_and_leaves_with_disconnect_on_sigint() -> None:
    with trio.fail_after(30):
        async with running_broker() as endpoint, open_client(endpoint) as client:
            command = python(
                "-m", "palaestrio.mdp.worker", "--connect", endpoint, "--service", "cli", "--echo"
            )
            async with running_process(command, ready_line="palaestrio worker ready") as worker:
                assert await client.request("cli", b"a", b"b") == [b"a", b"b"]
                worker.signal(signal.SIGINT)
                with trio.fail_after(5):
                    await worker.wait()
            # Default heartbeats (2.5 s x 3) would keep it listed for 7.5 s without a DISCONNECT.
            with trio.fail_after(1.0):
                while True:
                    if await client.request("mmi.service", b"cli") == [b"404"]:
                        break
                    await trio.sleep(0.02)


# --- worker against a hand-driven ROUTER -----------------------------------------------------


async def test_worker_sends_ready_heartbeats_and_disconnect() -> None:
    with trio.fail_after(10):
        async with fake_broker() as (router, endpoint):
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(serve_worker, endpoint, "svc", echo_handler, **FAST))
                identity, *ready = await next_command(router)
                assert ready == [READY, b"svc"]
                heartbeats = 0
                with trio.move_on_after(1.0):
                    while True:
                        with trio.move_on_after(0.1):
                            peer, *command = await next_command(router, skip_heartbeats=False)
                            assert (peer, command) == (identity, [HEARTBEAT])
                            heartbeats += 1
                        await router.send_multipart([identity, b"", MDPW01, HEARTBEAT])
                assert heartbeats >= 5, f"{heartbeats} worker heartbeats in 1 s at 0.1 s interval"
                nursery.cancel_scope.cancel()
            # The worker was cancelled; its DISCONNECT must reach us.
            with trio.fail_after(2):
                assert await next_command(router) == [identity, DISCONNECT]


async def test_worker_heartbeats_while_its_handler_runs_and_replies_per_rfc() -> None:
    async def handler(body: list[bytes]) -> list[bytes]:
        await trio.sleep(1.0)
        return [b"done", *body]

    with trio.fail_after(10):
        async with fake_broker() as (router, endpoint), trio.open_nursery() as nursery:
            await nursery.start(partial(serve_worker, endpoint, "busy", handler, **FAST))
            identity, *ready = await next_command(router)
            assert ready == [READY, b"busy"]
            await router.send_multipart(
                [identity, b"", MDPW01, REQUEST, b"client-7", b"", b"body", b""]
            )
            heartbeats = 0
            while True:
                with trio.move_on_after(0.1):
                    peer, *command = await next_command(router, skip_heartbeats=False)
                    assert peer == identity
                    if command != [HEARTBEAT]:
                        break
                    heartbeats += 1
                await router.send_multipart([identity, b"", MDPW01, HEARTBEAT])
            assert command == [REPLY, b"client-7", b"", b"done", b"body", b""]
            assert heartbeats >= 5, f"{heartbeats} heartbeats during a 1 s handler"
            nursery.cancel_scope.cancel()


async def test_worker_reconnects_when_the_broker_falls_silent() -> None:
    with trio.fail_after(15):
        async with fake_broker() as (router, endpoint), trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve_worker,
                    endpoint,
                    "lonely",
                    echo_handler,
                    **FAST,
                    reconnect_delay=0.05,
                    max_reconnect_delay=0.2,
                )
            )
            first, *ready = await next_command(router)
            assert ready == [READY, b"lonely"]
            first_at = trio.current_time()
            with trio.fail_after(3):
                # The worker MAY say DISCONNECT on its way out of the silent session.
                while True:
                    peer, *command = await next_command(router)
                    if command != [DISCONNECT]:
                        break
                    assert peer == first
            assert command == [READY, b"lonely"]
            # Not before the broker has been silent for interval x liveness = 0.3 s.
            assert trio.current_time() - first_at >= 0.25
            nursery.cancel_scope.cancel()


async def test_worker_registers_again_on_a_new_socket_after_disconnect() -> None:
    """RFC 7: on DISCONNECT the worker 'must send no further commands to the broker; it
    MUST close its socket, and reconnect to the broker on a new socket' (so a new ROUTER
    identity)."""
    with trio.fail_after(10):
        async with fake_broker() as (router, endpoint), trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve_worker, endpoint, "again", echo_handler, reconnect_delay=0.05)
            )
            first, *ready = await next_command(router)
            assert ready == [READY, b"again"]
            await router.send_multipart([first, b"", MDPW01, DISCONNECT])
            from_old_socket: list[list[bytes]] = []
            with trio.fail_after(3):
                while True:
                    second, *command = await next_command(router)
                    if second != first:
                        break
                    from_old_socket.append(command)
            assert command == [READY, b"again"]
            # The new registration works: a request is served over it.
            await router.send_multipart([second, b"", MDPW01, REQUEST, b"c", b"", b"ping"])
            assert await next_command(router) == [second, REPLY, b"c", b"", b"ping"]
            nursery.cancel_scope.cancel()
    assert from_old_socket == [], "worker sent commands after the broker's DISCONNECT"


async def test_client_request_frames_per_rfc() -> None:
    """The client's REQUEST on the wire: empty frame, MDPC01, service, body."""
    with trio.fail_after(10):
        async with open_socket(zmq.ROUTER) as router:
            endpoint = router.bind("tcp://127.0.0.1:*")
            async with open_client(endpoint) as client, trio.open_nursery() as nursery:
                replies: list[list[bytes]] = []

                async def ask() -> None:
                    replies.append(await client.request("wire", b"b1", b""))

                nursery.start_soon(ask)
                identity, *frames = await router.recv_multipart()
                assert frames == [b"", MDPC01, b"wire", b"b1", b""]
                await router.send_multipart([identity, b"", MDPC01, b"wire", b"r1"])
            assert replies == [[b"r1"]]
