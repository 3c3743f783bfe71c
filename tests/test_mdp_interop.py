"""Interop with peers written straight from RFC 7 (tests/mdp_plain.py), so that a bug
mirrored in palaestrio's own client and worker cannot hide: palaestrio client -> plain
worker, plain client -> palaestrio worker, both through palaestrio's broker, in-process
and as the standalone `python -m palaestrio.mdp.broker`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import trio

from mdp_support import (  # noqa: F401
    PLAIN_SCRIPT,
    collect_garbage_in_test,
    echo_handler,
    free_tcp_port,
    plain_request,
    python,
    running_broker,
    running_plain_worker,
    running_process,
    running_worker,
)
from palaestrio.mdp import protocol
from palaestrio.mdp.client import open_client

BODIES = [
    (b"hello",),
    (b"a", b"", b"c"),  # an empty frame inside the body is not an envelope delimiter
    (b"", b"MDPC01", b"MDPW01", b"\x02"),  # protocol-looking bytes are just body
    (bytes(range(256)) * 300,),
]


def test_protocol_constants_are_the_rfc_bytes() -> None:
    assert protocol.CLIENT == b"MDPC01"
    assert protocol.WORKER == b"MDPW01"
    assert (
        protocol.READY,
        protocol.REQUEST,
        protocol.REPLY,
        protocol.HEARTBEAT,
        protocol.DISCONNECT,
    ) == (b"\x01", b"\x02", b"\x03", b"\x04", b"\x05")


@pytest.mark.parametrize("bind", [None, "tcp://127.0.0.1:*"], ids=["ipc", "tcp"])
async def test_palaestrio_client_to_plain_worker(bind: str | None) -> None:
    def shout(body: list[bytes]) -> list[bytes]:
        return [b"plain", *body]

    with trio.fail_after(20):
        async with (
            running_broker(bind) as endpoint,
            running_plain_worker(endpoint, b"shout", shout) as plain,
            open_client(endpoint) as client,
        ):
            for body in BODIES:
                assert await client.request("shout", *body) == [b"plain", *body]
            assert await client.request(b"shout", b"bytes name") == [b"plain", b"bytes name"]
            # The worker saw exactly the body, nothing the client or broker added.
            assert plain.requests == [list(body) for body in BODIES] + [[b"bytes name"]]
            assert plain.violations == []


@pytest.mark.parametrize("bind", [None, "tcp://127.0.0.1:*"], ids=["ipc", "tcp"])
@pytest.mark.parametrize("use_dealer", [False, True], ids=["REQ", "DEALER"])
async def test_plain_client_to_palaestrio_worker(bind: str | None, use_dealer: bool) -> None:
    seen: list[list[bytes]] = []

    async def handler(body: list[bytes]) -> list[bytes]:
        seen.append(body)
        return [b"palaestrio", *body]

    with trio.fail_after(20):
        async with running_broker(bind) as endpoint, running_worker(endpoint, "tagger", handler):
            for body in BODIES:
                # plain_request checks the REPLY frames: MDPC01, the service name, body.
                reply = await plain_request(endpoint, b"tagger", *body, use_dealer=use_dealer)
                assert reply == [b"palaestrio", *body]
            assert seen == [list(body) for body in BODIES]


async def test_plain_client_and_plain_worker_through_palaestrio_broker() -> None:
    with trio.fail_after(20):
        async with (
            running_broker(heartbeat_interval=0.1, heartbeat_liveness=3) as endpoint,
            running_plain_worker(endpoint, b"echo", heartbeat_interval=0.1) as plain,
        ):
            assert await plain_request(endpoint, b"echo", b"1", b"2") == [b"1", b"2"]
            # Heartbeats flow both ways for a while without a spurious DISCONNECT.
            await trio.sleep(1.0)
            assert await plain_request(endpoint, b"echo", b"3") == [b"3"]
            assert plain.connections == 1
            assert plain.disconnects_received == 0
            assert plain.violations == []


async def test_mmi_service_through_a_plain_client() -> None:
    with trio.fail_after(20):
        async with (
            running_broker() as endpoint,
            running_plain_worker(endpoint, b"present"),
        ):
            # READY is sent, not necessarily handled yet: a served request proves it is.
            assert await plain_request(endpoint, b"present", b"hi") == [b"hi"]
            # plain_request also checks that the reply names "mmi.service" (RFC 7 REPLY).
            assert await plain_request(endpoint, b"mmi.service", b"present") == [b"200"]
            assert await plain_request(endpoint, b"mmi.service", b"absent") == [b"404"]
            assert await plain_request(endpoint, b"mmi.unknown", b"present") == [b"501"]


async def test_mmi_service_through_the_palaestrio_client() -> None:
    with trio.fail_after(20):
        async with (
            running_broker() as endpoint,
            running_worker(endpoint, "present", echo_handler),
            open_client(endpoint) as client,
        ):
            assert await client.request("present", b"hi") == [b"hi"]  # READY handled
            assert await client.request("mmi.service", b"present") == [b"200"]
            assert await client.request("mmi.service", b"absent") == [b"404"]
            assert await client.request("mmi.whatever", b"") == [b"501"]


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
async def test_standalone_broker_process_with_plain_and_palaestrio_peers(
    transport: str, stop_signal: int, tmp_path: Path
) -> None:
    if transport == "tcp":
        bind = f"tcp://127.0.0.1:{free_tcp_port()}"
    else:
        bind = f"ipc://{tmp_path}/broker.ipc"
    errors = tmp_path / "broker.stderr"
    command = python("-m", "palaestrio.mdp.broker", "--bind", bind)
    with trio.fail_after(30):
        async with running_process(
            command, ready_line="palaestrio broker listening on ", stderr=errors
        ) as broker:
            endpoint = broker.lines[-1].removeprefix("palaestrio broker listening on ").strip()
            assert endpoint == bind
            async with (
                running_plain_worker(endpoint, b"plain-echo"),
                running_worker(endpoint, "palaestrio-echo", echo_handler),
                open_client(endpoint) as client,
            ):
                assert await client.request("plain-echo", b"x") == [b"x"]
                assert await plain_request(endpoint, b"palaestrio-echo", b"y") == [b"y"]
            broker.signal(stop_signal)
            with trio.fail_after(5):
                assert await broker.wait() == 0
    log = errors.read_text()
    assert "Traceback" not in log, log
    assert "ResourceWarning" not in log, log


async def test_plain_worker_process_served_through_standalone_broker(tmp_path: Path) -> None:
    """The plain worker as a process too, so the whole path crosses process borders."""
    bind = f"tcp://127.0.0.1:{free_tcp_port()}"
    with trio.fail_after(30):
        async with (
            running_process(
                python("-m", "palaestrio.mdp.broker", "--bind", bind),
                ready_line="palaestrio broker listening on ",
            ),
            running_process(
                [sys.executable, PLAIN_SCRIPT, "worker", "--connect", bind, "--service", "e"],
                ready_line="plain worker ready",
            ),
            open_client(bind) as client,
        ):
            replies = [await client.request("e", b"%d" % n) for n in range(50)]
            assert replies == [[b"%d" % n] for n in range(50)]
