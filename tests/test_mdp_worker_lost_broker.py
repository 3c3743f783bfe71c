"""palaestrio's MDP worker with `reconnect=False`: a broker that closes, falls silent or
sends DISCONNECT ends `serve_worker` with BrokerLost, unwrapped, instead of a new
session (a governor must not outlive its executor's broker, nor meet the next one).
"""

from __future__ import annotations

import re

import pytest
import trio

from mdp_plain import DISCONNECT, MDPW01, READY
from mdp_support import (  # noqa: F401
    collect_garbage_in_test,
    echo_handler,
    fake_broker,
    free_tcp_port,
    next_command,
    running_broker,
)
from palaestrio.mdp.client import open_client
from palaestrio.mdp.protocol import BrokerLost
from palaestrio.mdp.worker import serve_worker

INTERVAL, LIVENESS = 0.1, 3  # silent for 0.3 s: lost


async def test_without_reconnect_a_closed_broker_ends_the_worker_with_broker_lost() -> None:
    bind = f"tcp://127.0.0.1:{free_tcp_port()}"
    closed_at: float | None = None

    async def serve_one_request_then_close(task_status: trio.TaskStatus[None]) -> None:
        nonlocal closed_at
        async with (
            running_broker(bind, heartbeat_interval=INTERVAL, heartbeat_liveness=LIVENESS),
            open_client(bind) as client,
        ):
            task_status.started()
            assert await client.request("orphan", b"ping") == [b"ping"]
        closed_at = trio.current_time()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_one_request_then_close)
            # Unwrapped: pytest.raises would not match an ExceptionGroup.
            with pytest.raises(
                BrokerLost, match=f"^{re.escape(f'MDP broker at {bind} silent for 0.3 s')}$"
            ):
                await serve_worker(
                    bind,
                    "orphan",
                    echo_handler,
                    reconnect=False,
                    heartbeat_interval=INTERVAL,
                    heartbeat_liveness=LIVENESS,
                )
            lost_at = trio.current_time()
    assert closed_at is not None, "the worker gave up while its broker was still there"
    # Silence counts from the broker's last heartbeat, at most one interval before closing.
    assert lost_at - closed_at >= 0.3 - 0.1 - 0.01


async def test_without_reconnect_a_silent_broker_gets_disconnect_and_no_new_ready() -> None:
    with trio.fail_after(10):
        async with fake_broker() as (router, endpoint), trio.open_nursery() as nursery:

            async def lost() -> None:
                with pytest.raises(BrokerLost, match=re.escape("silent for 0.3 s")):
                    await serve_worker(
                        endpoint,
                        "lonely",
                        echo_handler,
                        reconnect=False,
                        heartbeat_interval=INTERVAL,
                        heartbeat_liveness=LIVENESS,
                    )

            nursery.start_soon(lost)
            identity, *ready = await next_command(router)
            assert ready == [READY, b"lonely"]
            assert await next_command(router) == [identity, DISCONNECT]
            with trio.move_on_after(0.5):  # a reconnecting worker says READY after 0.1 s
                message = await router.recv_multipart()
                pytest.fail(f"worker sent {message!r} after it lost its broker")


async def test_without_reconnect_a_disconnect_from_the_broker_ends_the_worker() -> None:
    """Default heartbeats (7.5 s of silence) and a 5 s bound: DISCONNECT ends it, not
    silence; and, per RFC 7, the worker sends nothing more, not even DISCONNECT."""
    with trio.fail_after(5):
        async with fake_broker() as (router, endpoint):

            async def disconnect_it() -> None:
                identity, *ready = await next_command(router)
                assert ready == [READY, b"dismissed"]
                await router.send_multipart([identity, b"", MDPW01, DISCONNECT])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(disconnect_it)
                with pytest.raises(
                    BrokerLost, match=f"^{re.escape(f'MDP broker at {endpoint} sent DISCONNECT')}$"
                ):
                    await serve_worker(endpoint, "dismissed", echo_handler, reconnect=False)
            with trio.move_on_after(0.5):
                message = await router.recv_multipart()
                pytest.fail(f"worker sent {message!r} after the broker's DISCONNECT")
