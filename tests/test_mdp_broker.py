"""palaestrio's MDP broker over real sockets: endpoints, a SIGKILLed worker's expiry,
broker restarts, routing under load, and that the core's answers, heartbeats and
warnings reach the wire. The broker's rules themselves are tested, clock-free, on its
sans-IO core in test_mdp_broker_core.py.

Raw peers speak the wire format by hand, so every frame the broker sends is checked
exactly as the RFC lists it.
"""

from __future__ import annotations

import logging
import random
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import zmq

from mdp_plain import DISCONNECT, HEARTBEAT, MDPC01, MDPW01, READY, REPLY
from mdp_support import (  # noqa: F401
    ECHO_WORKER_SCRIPT,
    collect_garbage_in_test,
    echo_handler,
    free_tcp_port,
    python,
    running_broker,
    running_process,
    running_worker,
)
from palaestrio.mdp import broker
from palaestrio.mdp.client import open_client
from palaestrio.mdp.worker import serve_worker
from palaestrio.zmq_trio import Socket, open_socket

FAST = {"heartbeat_interval": 0.1, "heartbeat_liveness": 3}  # expiry after 0.3 s


@asynccontextmanager
async def raw_peer(endpoint: str) -> AsyncIterator[Socket]:
    async with open_socket(zmq.DEALER) as sock:
        sock.connect(endpoint)
        yield sock


async def next_message(sock: Socket, *, skip_heartbeats: bool = True) -> list[bytes]:
    """The next message, passing over broker HEARTBEATs unless asked not to."""
    while True:
        message = await sock.recv_multipart()
        if skip_heartbeats and message == [b"", MDPW01, HEARTBEAT]:
            continue
        return message


async def mmi_probe(sock: Socket, service: bytes) -> bytes:
    """Asks mmi.service over `sock` itself. The broker handles one peer's messages in
    order, so once the answer is back, everything sent before it has been processed."""
    await sock.send_multipart([b"", MDPC01, b"mmi.service", service])
    while True:
        message = await next_message(sock)
        if message[:3] == [b"", MDPC01, b"mmi.service"]:
            assert len(message) == 4, message
            return message[3]


async def register(sock: Socket, service: bytes) -> None:
    await sock.send_multipart([b"", MDPW01, READY, service])
    assert await mmi_probe(sock, service) == b"200"


async def mmi(endpoint: str, service: bytes) -> bytes:
    async with raw_peer(endpoint) as sock:
        return await mmi_probe(sock, service)


async def until_mmi_says(endpoint: str, service: bytes, answer: bytes) -> None:
    """Polls mmi.service until the broker gives `answer` (callers bound the wait)."""
    while True:
        if await mmi(endpoint, service) == answer:
            return
        await trio.sleep(0.02)


async def test_default_endpoint_is_ipc_in_a_private_directory_removed_on_exit() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            endpoint: str = await nursery.start(broker.serve)
            assert endpoint.startswith("ipc://"), endpoint
            path = trio.Path(endpoint.removeprefix("ipc://"))
            directory = path.parent
            assert await path.exists()
            assert (await directory.stat()).st_mode & 0o777 == 0o700
            assert await mmi(endpoint, b"nothing") == b"404"
            nursery.cancel_scope.cancel()
        assert not await directory.exists()


async def test_tcp_wildcard_bind_reports_the_chosen_port() -> None:
    with trio.fail_after(10):
        async with running_broker("tcp://127.0.0.1:*") as endpoint:
            host, _, port = endpoint.rpartition(":")
            assert host == "tcp://127.0.0.1"
            assert int(port) > 0
            assert await mmi(endpoint, b"nothing") == b"404"


async def test_sigkilled_worker_is_forgotten_and_a_request_sent_meanwhile_is_served_later() -> None:
    def echo_worker(endpoint: str, tag: str) -> list[str]:
        return [
            *python(ECHO_WORKER_SCRIPT, "--connect", endpoint, "--service", "echo"),
            *("--tag", tag, "--heartbeat-interval", "0.1", "--heartbeat-liveness", "3"),
        ]

    with trio.fail_after(30):
        async with running_broker(**FAST) as endpoint, open_client(endpoint) as client:
            async with running_process(
                echo_worker(endpoint, "A"), ready_line="echo worker ready"
            ) as a:
                assert await client.request("echo", b"first") == [b"A", b"first"]
                a.signal(signal.SIGKILL)
                assert await a.wait() == -signal.SIGKILL
            killed_at = trio.current_time()
            served: list[list[bytes]] = []
            done = trio.Event()

            async def request_meanwhile() -> None:
                served.append(await client.request("echo", b"meanwhile"))
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request_meanwhile)
                await until_mmi_says(endpoint, b"echo", b"404")
                forgotten_after = trio.current_time() - killed_at
                # interval x liveness = 0.3 s; allow for scheduling on a busy machine.
                assert forgotten_after < 1.5, f"dead worker still known after {forgotten_after} s"
                assert served == []
                async with running_process(
                    echo_worker(endpoint, "B"), ready_line="echo worker ready"
                ):
                    with trio.fail_after(5):
                        await done.wait()
            assert served == [[b"B", b"meanwhile"]]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("downtime", [0.0, 0.8], ids=["quick", "after-expiry"])
async def test_worker_reconnects_by_itself_after_broker_restart(
    transport: str, downtime: float, tmp_path: Path
) -> None:
    """A quick restart has the worker's old connection come back (the new broker answers
    its HEARTBEAT with DISCONNECT); a slow one has the worker notice the silence."""
    if transport == "tcp":
        bind = f"tcp://127.0.0.1:{free_tcp_port()}"
    else:
        bind = f"ipc://{tmp_path}/broker.ipc"
    served: list[list[bytes]] = []

    async def handler(body: list[bytes]) -> list[bytes]:
        served.append(body)
        return [b"ok", *body]

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with running_broker(bind, **FAST) as endpoint:
                assert endpoint == bind
                await nursery.start(
                    partial(
                        serve_worker,
                        endpoint,
                        "steady",
                        handler,
                        **FAST,
                        reconnect_delay=0.05,
                        max_reconnect_delay=0.2,
                    )
                )
                async with open_client(endpoint) as client:
                    assert await client.request("steady", b"before") == [b"ok", b"before"]
            await trio.sleep(downtime)
            await until_released(bind)
            async with running_broker(bind, **FAST) as endpoint, open_client(endpoint) as client:
                with trio.fail_after(10):
                    assert await client.request("steady", b"after") == [b"ok", b"after"]
            nursery.cancel_scope.cancel()
    assert served == [[b"before"], [b"after"]]


async def until_released(endpoint: str) -> None:
    """Waits until libzmq has really let go of a closed broker's TCP port.

    zmq_close returns before the I/O thread closes the listener, so `serve()` may return
    while the port is still held, and binding it again at once can fail with EADDRINUSE
    (reported to the broker's author). An ipc:// path is simply bound again.
    """
    if not endpoint.startswith("tcp://"):
        return
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, int(port)))
            except OSError:
                pass
            else:
                return
        await trio.sleep(0.005)


async def test_client_opened_before_a_broker_restart_works_after_it() -> None:
    bind = f"tcp://127.0.0.1:{free_tcp_port()}"
    with trio.fail_after(30):
        async with open_client(bind) as client, trio.open_nursery() as nursery:
            async with running_broker(bind, **FAST):
                await nursery.start(partial(serve_worker, bind, "s", echo_handler, **FAST))
                assert await client.request("s", b"1") == [b"1"]
            await until_released(bind)
            async with running_broker(bind, **FAST):
                # A request sent before the client's zmq I/O thread saw the old connection
                # die goes into that dead pipe and is lost (as RFC 7 says, reliability is
                # the client's retry): resend until the new broker answers.
                reply = None
                with trio.fail_after(10):
                    while reply is None:
                        with trio.move_on_after(1):
                            reply = await client.request("s", b"2")
                assert reply == [b"2"]
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("clients", [1, 3])
async def test_many_concurrent_requests_over_several_services_get_their_own_replies(
    clients: int,
) -> None:
    services = ["alpha", "beta", "gamma", "delta"]
    requests = 200
    rng = random.Random(7)
    delays = [rng.uniform(0, 0.005) for _ in range(requests)]

    def handler_for(service: str) -> Callable[[list[bytes]], Awaitable[list[bytes]]]:
        async def handler(body: list[bytes]) -> list[bytes]:
            await trio.sleep(delays[int(body[0])])
            return [service.encode(), *body]

        return handler

    outstanding = 0
    peak = 0
    replies: dict[int, list[bytes]] = {}

    with trio.fail_after(60):
        async with running_broker() as endpoint, trio.open_nursery() as workers:
            for service in services:
                for _ in range(2):
                    await workers.start(
                        partial(serve_worker, endpoint, service, handler_for(service))
                    )
            async with (
                open_client(endpoint) as first,
                open_client(endpoint) as second,
                open_client(endpoint) as third,
            ):
                pool = [first, second, third][:clients]
                started = trio.Event()

                async def one_request(index: int) -> None:
                    nonlocal outstanding, peak
                    await started.wait()
                    outstanding += 1
                    peak = max(peak, outstanding)
                    client = pool[index % len(pool)]
                    service = services[index % len(services)]
                    replies[index] = await client.request(service, b"%d" % index, b"tail")
                    outstanding -= 1

                async with trio.open_nursery() as nursery:
                    for index in range(requests):
                        nursery.start_soon(one_request, index)
                    await trio.sleep(0.05)
                    started.set()
            workers.cancel_scope.cancel()
    assert peak >= 100
    assert replies == {
        index: [services[index % len(services)].encode(), b"%d" % index, b"tail"]
        for index in range(requests)
    }


async def test_the_broker_heartbeats_a_registered_worker_through_its_socket() -> None:
    """The core's heartbeats reach the wire (expiry through the socket: the SIGKILL test)."""
    with trio.fail_after(10):
        async with running_broker(**FAST) as endpoint, raw_peer(endpoint) as sock:
            await register(sock, b"pulse")
            for _ in range(3):
                message = await sock.recv_multipart()
                assert message == [b"", MDPW01, HEARTBEAT], message
                await sock.send_multipart([b"", MDPW01, HEARTBEAT])


@pytest.mark.parametrize(
    "command",
    [[HEARTBEAT], [REPLY, b"\x00\x80\x00\x00\x01", b"", b"stray reply"]],
    ids=["HEARTBEAT", "REPLY"],
)
async def test_command_from_an_unknown_worker_is_answered_with_disconnect(
    command: list[bytes],
) -> None:
    with trio.fail_after(10):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            await sock.send_multipart([b"", MDPW01, *command])
            assert await next_message(sock) == [b"", MDPW01, DISCONNECT]


BAD_MESSAGES = [
    [b"no delimiter"],
    [b""],
    [b"", b"MDPX01", b"svc", b"body"],
    [b"", MDPC01],
    [b"", MDPW01],
    [b"", MDPW01, b"\x09"],
    [b"", MDPW01, READY],
    [b"\xde\xad\xbe\xef", b"\x00" * 7, b"\xff"],
]


def broker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "palaestrio.mdp.broker" and record.levelno == logging.WARNING
    ]


async def test_bad_messages_are_dropped_and_summed_up_in_two_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    with trio.fail_after(10):
        async with (
            running_broker(drop_log_interval=0.2, **FAST) as endpoint,
            raw_peer(endpoint) as sock,
        ):
            for message in BAD_MESSAGES:
                await sock.send_multipart(message)
            assert await mmi_probe(sock, b"anything") == b"404"
            async with (
                running_worker(endpoint, "still", echo_handler, **FAST),
                open_client(endpoint) as client,
            ):
                assert await client.request("still", b"serving") == [b"serving"]
            while len(broker_warnings(caplog)) < 2:  # the summary comes with a tick
                await trio.sleep(0.05)
    first, summary = broker_warnings(caplog)
    assert first.startswith("dropped a message from "), first
    assert summary.startswith("7 more message(s) dropped or requeued in the last 0.2 s: ")


async def test_twenty_thousand_random_messages_cost_a_few_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 16: 20,000 random frames made 32,549 log lines; now a few, and the broker
    still serves a real client and worker afterwards."""
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    noise = random.Random(20_000)
    headers = [b"", MDPC01, MDPW01, b"MDPX01", b"\x00"]
    with trio.fail_after(60):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            for _ in range(20_000):
                message = [noise.randbytes(noise.randrange(5)) for _ in range(noise.randrange(5))]
                if len(message) >= 2 and noise.random() < 0.5:
                    message[:2] = [b"", noise.choice(headers)]
                if not sock.try_send_multipart(message or [b"x"]):  # no scheduler pass
                    await sock.send_multipart(message or [b"x"])
            assert await mmi_probe(sock, b"anything") == b"404"
            async with (
                running_worker(endpoint, "after", echo_handler),
                open_client(endpoint) as client,
            ):
                assert await client.request("after", b"still serving") == [b"still serving"]
    lines = broker_warnings(caplog)
    assert 1 <= len(lines) <= 3, lines
