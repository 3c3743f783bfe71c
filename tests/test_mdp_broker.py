"""palaestrio's MDP broker: endpoints, worker expiry and restart, routing under load,
the worker-side protocol rules of RFC 7 / RFC 8 seen from raw DEALER peers, and bad input.

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

from mdp_plain import DISCONNECT, HEARTBEAT, MDPC01, MDPW01, READY, REPLY, REQUEST
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
                with trio.fail_after(10):
                    assert await client.request("s", b"2") == [b"2"]
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


async def test_request_for_a_service_without_worker_waits_until_one_comes() -> None:
    with trio.fail_after(20):
        async with running_broker() as endpoint, open_client(endpoint) as client:
            served: list[list[bytes]] = []
            done = trio.Event()

            async def ask() -> None:
                served.append(await client.request("late", b"patience"))
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask)
                await trio.sleep(0.5)
                assert served == []
                async with running_worker(endpoint, "late", echo_handler):
                    with trio.fail_after(5):
                        await done.wait()
            assert served == [[b"patience"]]


async def test_waiting_requests_are_bounded() -> None:
    with trio.fail_after(20):
        async with running_broker(max_waiting_requests=3) as endpoint, raw_peer(endpoint) as client:
            for index in range(6):
                await client.send_multipart([b"", MDPC01, b"bounded", b"%d" % index])
            assert await mmi_probe(client, b"bounded") == b"404"  # all six are in now
            echoed: list[bytes] = []
            async with running_worker(endpoint, "bounded", echo_handler):
                while True:
                    with trio.move_on_after(1.0) as quiet:
                        message = await next_message(client)
                    if quiet.cancelled_caught:
                        break
                    assert message[:3] == [b"", MDPC01, b"bounded"], message
                    echoed.extend(message[3:])
    assert len(echoed) == 3, echoed


async def test_idle_workers_are_used_least_recently_used_first() -> None:
    with trio.fail_after(20):
        async with (
            running_broker() as endpoint,
            raw_peer(endpoint) as one,
            raw_peer(endpoint) as two,
            raw_peer(endpoint) as client,
        ):
            await register(one, b"lru")
            await register(two, b"lru")
            workers = {"one": one, "two": two}

            async def request(body: bytes) -> tuple[str, bytes]:
                """Sends a request and returns which worker got it, with the client address."""
                await client.send_multipart([b"", MDPC01, b"lru", body])
                received: list[tuple[str, list[bytes]]] = []
                async with trio.open_nursery() as nursery:
                    for name, sock in workers.items():

                        async def take(name: str = name, sock: Socket = sock) -> None:
                            received.append((name, await next_message(sock)))
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(take)
                [(name, message)] = received
                assert len(message) == 6, message
                assert message[:3] == [b"", MDPW01, REQUEST]
                assert message[4:] == [b"", body]
                return name, message[3]

            async def reply(name: str, address: bytes, body: bytes) -> None:
                await workers[name].send_multipart([b"", MDPW01, REPLY, address, b"", body])
                assert await next_message(client) == [b"", MDPC01, b"lru", body]

            first, first_address = await request(b"r1")
            second, second_address = await request(b"r2")
            assert (first, second) == ("one", "two")
            await reply("two", second_address, b"R2")  # two is now idle longer than one
            await reply("one", first_address, b"R1")
            third, third_address = await request(b"r3")
            assert third == "two"
            await reply(third, third_address, b"R3")


async def test_heartbeats_flow_and_a_silent_worker_expires() -> None:
    # Liveness 5 (0.5 s) rather than 3: a stall of this loaded process must not expire
    # the raw worker while it does send heartbeats.
    with trio.fail_after(20):
        async with (
            running_broker(heartbeat_interval=0.1, heartbeat_liveness=5) as endpoint,
            raw_peer(endpoint) as sock,
        ):
            await register(sock, b"pulse")
            heard = 0
            with trio.move_on_after(1.0):
                while True:
                    with trio.move_on_after(0.1):
                        message = await sock.recv_multipart()
                        assert message == [b"", MDPW01, HEARTBEAT], message
                        heard += 1
                    await sock.send_multipart([b"", MDPW01, HEARTBEAT])
            assert heard >= 5, f"only {heard} broker heartbeats in 1 s at 0.1 s interval"
            assert await mmi(endpoint, b"pulse") == b"200"  # our heartbeats kept us alive
            silent_since = trio.current_time()
            await until_mmi_says(endpoint, b"pulse", b"404")
            assert trio.current_time() - silent_since < 2.0


async def test_worker_disconnect_unregisters_and_the_broker_falls_silent() -> None:
    with trio.fail_after(20):
        async with running_broker(**FAST) as endpoint, raw_peer(endpoint) as sock:
            await register(sock, b"leaving")
            await sock.send_multipart([b"", MDPW01, DISCONNECT])
            assert await mmi_probe(sock, b"leaving") == b"404"
            with trio.move_on_after(0.6):
                message = await sock.recv_multipart()
                pytest.fail(f"broker sent {message!r} to a worker that disconnected")


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


async def test_reply_from_an_idle_worker_is_answered_with_disconnect() -> None:
    """RFC 7: 'The broker MUST respond to any valid but unexpected command by sending
    DISCONNECT'; a REPLY from a worker that was given no request is one."""
    with trio.fail_after(10):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            await register(sock, b"idle")
            await sock.send_multipart([b"", MDPW01, REPLY, b"\x00\x80\x00\x00\x01", b"", b"?"])
            assert await next_message(sock) == [b"", MDPW01, DISCONNECT]


async def test_second_ready_is_answered_with_disconnect_and_unregisters() -> None:
    with trio.fail_after(10):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            await register(sock, b"twice")
            await sock.send_multipart([b"", MDPW01, READY, b"twice"])
            assert await next_message(sock) == [b"", MDPW01, DISCONNECT]
            assert await mmi(endpoint, b"twice") == b"404"


async def test_ready_for_the_mmi_namespace_is_answered_with_disconnect() -> None:
    """RFC 8: the broker 'MUST disconnect any workers that attempt to register services
    in this namespace'."""
    with trio.fail_after(10):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            await sock.send_multipart([b"", MDPW01, READY, b"mmi.mine"])
            assert await next_message(sock) == [b"", MDPW01, DISCONNECT]


async def test_mmi_answers() -> None:
    with trio.fail_after(10):
        async with (
            running_broker() as endpoint,
            raw_peer(endpoint) as worker_sock,
            raw_peer(endpoint) as client,
        ):
            await register(worker_sock, b"here")
            for service, body, expected in [
                (b"mmi.service", b"here", b"200"),
                (b"mmi.service", b"gone", b"404"),
                (b"mmi.nothing", b"here", b"501"),
            ]:
                await client.send_multipart([b"", MDPC01, service, body])
                assert await next_message(client) == [b"", MDPC01, service, expected]


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


async def test_bad_messages_are_dropped_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    with trio.fail_after(10):
        async with running_broker() as endpoint, raw_peer(endpoint) as sock:
            for message in BAD_MESSAGES:
                await sock.send_multipart(message)
            assert await mmi_probe(sock, b"anything") == b"404"
            async with (
                running_worker(endpoint, "still", echo_handler),
                open_client(endpoint) as client,
            ):
                assert await client.request("still", b"serving") == [b"serving"]
    warnings = [
        record
        for record in caplog.records
        if record.name == "palaestrio.mdp.broker" and record.levelno == logging.WARNING
    ]
    assert len(warnings) == len(BAD_MESSAGES), [record.getMessage() for record in warnings]
    assert all(record.getMessage() for record in warnings)
