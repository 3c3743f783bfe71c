"""palaestrio.zmq_trio: the trio wrapper around pyzmq sockets, on real sockets.

The edge-triggered ZMQ_FD loses wakeups in subtle ways (trio-notes §1), so besides the
plain contract these tests push many messages through pipelined, flow-controlled and
many-socket patterns, each bounded by fail_after: a lost wakeup shows up as a timeout.
"""

from __future__ import annotations

import re
import time

import pytest
import trio
import zmq

from mdp_support import collect_garbage_in_test  # noqa: F401
from palaestrio.zmq_trio import Socket, open_socket

ANY_PORT = "tcp://127.0.0.1:*"


async def test_bind_returns_the_actual_endpoint_and_frames_round_trip() -> None:
    with trio.fail_after(10):
        async with open_socket(zmq.ROUTER) as router, open_socket(zmq.DEALER) as dealer:
            endpoint = router.bind(ANY_PORT)
            match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", endpoint)
            assert match, endpoint
            assert int(match[1]) > 0
            dealer.connect(endpoint)
            frames = [b"", b"x" * 100_000, b"\x00\xff", b""]
            await dealer.send_multipart(frames)
            identity, *received = await router.recv_multipart()
            assert received == frames
            await router.send_multipart([identity, b"back", b""])
            assert await dealer.recv_multipart() == [b"back", b""]


async def test_exiting_the_context_closes_the_zmq_socket() -> None:
    with trio.fail_after(5):
        async with open_socket(zmq.DEALER) as sock:
            assert isinstance(sock, Socket)
            assert not sock.raw.closed
        assert sock.raw.closed


async def test_socket_uses_the_given_context() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with trio.fail_after(5):
            async with (
                open_socket(zmq.PAIR, context=context) as left,
                open_socket(zmq.PAIR, context=context) as right,
            ):
                assert left.raw.context is context
                # inproc only works inside one context, so this proves it is shared.
                left.bind("inproc://zmq-trio-test")
                right.connect("inproc://zmq-trio-test")
                await right.send_multipart([b"hello"])
                assert await left.recv_multipart() == [b"hello"]
    finally:
        context.term()


async def test_many_ping_pong_round_trips_lose_no_wakeup() -> None:
    rounds = 3000
    with trio.fail_after(30):
        async with open_socket(zmq.DEALER) as server, open_socket(zmq.DEALER) as client:
            client.connect(server.bind(ANY_PORT))

            async def echo_back() -> None:
                for _ in range(rounds):
                    await server.send_multipart(await server.recv_multipart())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo_back)
                for number in range(rounds):
                    await client.send_multipart([b"%d" % number])
                    assert await client.recv_multipart() == [b"%d" % number]


async def test_pipelined_bursts_from_one_task() -> None:
    """Sending a burst and then receiving it exercises the rule 're-read EVENTS after
    every zmq call': replies can become readable during a send without an FD edge."""
    bursts, burst = 100, 64
    with trio.fail_after(30):
        async with open_socket(zmq.DEALER) as server, open_socket(zmq.DEALER) as client:
            client.connect(server.bind(ANY_PORT))

            async def echo_back() -> None:
                for _ in range(bursts * burst):
                    await server.send_multipart(await server.recv_multipart())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo_back)
                for round_number in range(bursts):
                    sent = [b"%d-%d" % (round_number, index) for index in range(burst)]
                    for body in sent:
                        await client.send_multipart([body])
                    received = [(await client.recv_multipart())[0] for _ in sent]
                    assert received == sent


async def test_send_waits_at_the_high_water_mark_and_resumes() -> None:
    count = 3000
    with trio.fail_after(30):
        async with open_socket(zmq.PUSH) as push, open_socket(zmq.PULL) as pull:
            push.raw.setsockopt(zmq.SNDHWM, 5)
            pull.raw.setsockopt(zmq.RCVHWM, 5)
            push.connect(pull.bind(ANY_PORT))
            received: list[int] = []

            async def slow_reader() -> None:
                for index in range(count):
                    received.append(int((await pull.recv_multipart())[0]))
                    if index % 100 == 0:
                        await trio.sleep(0.01)  # let the sender run into the HWM

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow_reader)
                for index in range(count):
                    await push.send_multipart([b"%d" % index])
            assert received == list(range(count))


@pytest.mark.parametrize("hwm", [1000, 4], ids=["roomy", "tight"])
async def test_duplex_sender_and_receiver_tasks_on_one_socket(hwm: int) -> None:
    """One task sends while another receives on the same socket: the case where a
    naive adapter hangs (trio-notes §1.4). Tight high-water marks make both directions
    wait on the one FD at the same time."""
    count = 10_000
    received: list[int] = []
    with trio.fail_after(60):
        async with open_socket(zmq.DEALER) as sock, open_socket(zmq.DEALER) as echo_sock:
            for raw in (sock.raw, echo_sock.raw):
                raw.setsockopt(zmq.SNDHWM, hwm)
                raw.setsockopt(zmq.RCVHWM, hwm)
            echo_sock.connect(sock.bind(ANY_PORT))

            async def echo_back() -> None:
                for _ in range(count):
                    await echo_sock.send_multipart(await echo_sock.recv_multipart())

            async def send_all() -> None:
                for index in range(count):
                    await sock.send_multipart([b"%d" % index])

            async def receive_all() -> None:
                for _ in range(count):
                    received.append(int((await sock.recv_multipart())[0]))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo_back)
                nursery.start_soon(receive_all)
                nursery.start_soon(send_all)
    assert received == list(range(count))


async def test_a_receivers_zmq_calls_do_not_swallow_the_senders_wakeup() -> None:
    """Deterministic form of a duplex lost wakeup: a sender watches the FD for POLLOUT
    (its peer is not connected yet); the connection comes up while trio cannot run; then
    a receiver's recv (Again) and EVENTS read process the attach command, which drains
    the FD. POLLOUT is now set, so the sender must be woken by whoever saw it."""
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock, open_socket(zmq.DEALER) as peer:
            endpoint = sock.bind(ANY_PORT)
            sent = trio.Event()

            async def sender() -> None:
                await sock.send_multipart([b"hello"])  # no peer yet: it waits on the FD
                sent.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await trio.sleep(0.1)
                peer.connect(endpoint)
                # Blocking on purpose: the connection is made while trio cannot run.
                time.sleep(0.5)  # noqa: ASYNC251
                with trio.move_on_after(0.5):
                    await sock.recv_multipart()  # nothing to receive; it parks
                with trio.fail_after(2):
                    await sent.wait()
                assert await peer.recv_multipart() == [b"hello"]
                nursery.cancel_scope.cancel()


async def test_many_socket_pairs_in_parallel() -> None:
    """Idle and busy sockets side by side: one socket's zmq calls must not eat another's
    wakeup (pyzmq maintainers ask for tests 'with a lot of idle sockets')."""
    pairs, rounds = 40, 50
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for pair in range(pairs):
                nursery.start_soon(_ping_pong_pair, pair, rounds)


async def _ping_pong_pair(pair: int, rounds: int) -> None:
    async with open_socket(zmq.ROUTER) as server, open_socket(zmq.DEALER) as client:
        client.connect(server.bind(ANY_PORT))

        async def serve() -> None:
            for _ in range(rounds):
                identity, body = await server.recv_multipart()
                await server.send_multipart([identity, body + b"!"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            for number in range(rounds):
                body = b"%d:%d" % (pair, number)
                await client.send_multipart([body])
                assert await client.recv_multipart() == [body + b"!"]


async def test_close_wakes_a_waiting_receiver_at_once() -> None:
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock:
            sock.connect("tcp://127.0.0.1:9")  # nothing will ever arrive
            outcome: list[BaseException] = []
            woke_at: list[float] = []

            async def wait_forever() -> None:
                try:
                    await sock.recv_multipart()
                except trio.ClosedResourceError as error:
                    outcome.append(error)
                    woke_at.append(trio.current_time())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_forever)
                await trio.sleep(0.2)  # let it park on the FD
                closed_at = trio.current_time()
                sock.close()
            assert len(outcome) == 1, "the waiting task did not get ClosedResourceError"
            assert woke_at[0] - closed_at < 0.2
            assert sock.raw.closed


async def test_close_wakes_a_sender_blocked_at_the_high_water_mark() -> None:
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock:
            sock.raw.setsockopt(zmq.SNDHWM, 1)
            sock.connect("tcp://127.0.0.1:9")  # never connects, so sends queue up
            outcome: list[BaseException] = []

            async def send_until_blocked() -> None:
                try:
                    while True:
                        await sock.send_multipart([b"x"])
                except trio.ClosedResourceError as error:
                    outcome.append(error)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_until_blocked)
                await trio.sleep(0.2)
                closed_at = trio.current_time()
                sock.close()
            assert len(outcome) == 1
            assert trio.current_time() - closed_at < 0.2


async def test_closed_socket_refuses_use() -> None:
    with trio.fail_after(5):
        async with open_socket(zmq.DEALER) as sock:
            sock.close()
            with pytest.raises(trio.ClosedResourceError):
                await sock.send_multipart([b"x"])
            with pytest.raises(trio.ClosedResourceError):
                await sock.recv_multipart()
            sock.close()  # closing twice is harmless, and so is leaving the block


async def test_second_receiver_raises_busy_resource_error_and_a_sender_may_go_on() -> None:
    """One task may send while another receives (like a trio stream); a second
    concurrent receiver gets BusyResourceError at once instead of a hang."""
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock, open_socket(zmq.DEALER) as peer:
            peer.connect(sock.bind(ANY_PORT))
            first_result: list[list[bytes]] = []

            async def owner() -> None:
                first_result.append(await sock.recv_multipart())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(owner)
                await trio.sleep(0.1)  # the owner is parked in recv now
                with pytest.raises(trio.BusyResourceError):
                    await sock.recv_multipart()
                # Sending while the owner waits in recv is allowed, and reaches the peer.
                await sock.send_multipart([b"while you wait"])
                assert await peer.recv_multipart() == [b"while you wait"]
                # The refusal must not disturb the owner.
                await peer.send_multipart([b"for the owner"])
            assert first_result == [[b"for the owner"]]
            # Once the owner is done, another task may use the socket.
            await sock.send_multipart([b"later"])
            assert await peer.recv_multipart() == [b"later"]


async def test_second_sender_while_one_waits_at_the_high_water_mark_raises_busy() -> None:
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock:
            sock.raw.setsockopt(zmq.SNDHWM, 1)
            sock.connect("tcp://127.0.0.1:9")  # never connects, so sends queue up
            blocked = trio.Event()

            async def fill_and_block() -> None:
                while True:
                    with trio.move_on_after(0.05) as scope:
                        await sock.send_multipart([b"x"])
                    if scope.cancelled_caught:
                        break
                blocked.set()
                await sock.send_multipart([b"waits until closed"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fill_and_block)
                await blocked.wait()
                await trio.sleep(0.05)
                with pytest.raises(trio.BusyResourceError):
                    await sock.send_multipart([b"intruder"])
                nursery.cancel_scope.cancel()


async def test_cancelled_receive_loses_no_message_and_frees_the_socket() -> None:
    with trio.fail_after(10):
        async with open_socket(zmq.DEALER) as sock, open_socket(zmq.DEALER) as peer:
            peer.connect(sock.bind(ANY_PORT))
            with trio.move_on_after(0.1) as scope:
                await sock.recv_multipart()
            assert scope.cancelled_caught
            await peer.send_multipart([b"after the cancel"])
            assert await sock.recv_multipart() == [b"after the cancel"]
