"""The MDP broker's sans-IO core: heartbeats, expiry, LRU dispatch, requeue, the waiting
queue's bound, MMI and the RFC's DISCONNECT rules, driven by handing it ROUTER messages
and times. No sockets and no clock: every test is synchronous and exact to the second
(interval 1 s, liveness 3), and cannot wait on anything.
"""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdp_plain import DISCONNECT, HEARTBEAT, MDPC01, MDPW01, READY, REPLY, REQUEST
from palaestrio.mdp.broker_core import BrokerCore

Message = list[bytes]


def new_core(**options: float) -> BrokerCore:
    return BrokerCore(heartbeat_interval=1.0, heartbeat_liveness=3, now=0.0, **options)  # type: ignore[arg-type]


def client(identity: bytes, service: bytes, *body: bytes) -> Message:
    return [identity, b"", MDPC01, service, *body]


def worker(identity: bytes, command: bytes, *rest: bytes) -> Message:
    return [identity, b"", MDPW01, command, *rest]


def request_to(identity: bytes, client_identity: bytes, *body: bytes) -> Message:
    """The REQUEST the broker sends worker `identity` for `client_identity`."""
    return worker(identity, REQUEST, client_identity, b"", *body)


def reply_from(identity: bytes, client_identity: bytes, *body: bytes) -> Message:
    return worker(identity, REPLY, client_identity, b"", *body)


def mmi(core: BrokerCore, service: bytes, now: float = 0.0) -> bytes:
    [answer] = core.receive(client(b"probe", b"mmi.service", service), now)
    assert answer[:4] == [b"probe", b"", MDPC01, b"mmi.service"], answer
    return answer[4]


# --- heartbeats and expiry ----------------------------------------------------------------


def test_tick_heartbeats_every_worker_once_per_interval() -> None:
    core = new_core()
    assert core.next_deadline() == 1.0
    assert core.receive(worker(b"w1", READY, b"s"), 0.0) == []
    assert core.receive(worker(b"w2", READY, b"t"), 0.5) == []
    assert core.tick(0.99) == []  # not due: nothing, and the deadline stays
    assert core.next_deadline() == 1.0
    assert core.tick(1.25) == [worker(b"w1", HEARTBEAT), worker(b"w2", HEARTBEAT)]
    assert core.next_deadline() == 2.25  # one interval after the tick that ran
    assert core.tick(2.0) == []


def test_a_heartbeating_worker_stays_and_a_silent_one_expires_after_interval_x_liveness() -> None:
    core = new_core()
    core.receive(worker(b"alive", READY, b"pulse"), 0.0)
    core.receive(worker(b"silent", READY, b"quiet"), 0.0)
    for now in (1.0, 2.0, 3.0):
        assert core.tick(now) == [worker(b"alive", HEARTBEAT), worker(b"silent", HEARTBEAT)]
        core.receive(worker(b"alive", HEARTBEAT), now)
    # Silent for exactly 3 s is not yet too long; the tick after that forgets it.
    assert mmi(core, b"quiet", 3.0) == b"200"
    assert core.tick(4.0) == [worker(b"alive", HEARTBEAT)]
    assert mmi(core, b"quiet", 4.0) == b"404"
    assert mmi(core, b"pulse", 4.0) == b"200"
    # If it wakes up, it is a stranger now: told to start over.
    assert core.receive(worker(b"silent", HEARTBEAT), 4.5) == [worker(b"silent", DISCONNECT)]


def test_a_reply_also_keeps_a_worker_alive() -> None:
    core = new_core()
    core.receive(worker(b"w", READY, b"s"), 0.0)
    for second in range(1, 8):
        now = float(second)
        [request] = core.receive(client(b"c", b"s", b"%d" % second), now - 0.5)
        assert request == request_to(b"w", b"c", b"%d" % second)
        core.receive(reply_from(b"w", b"c", b"ok"), now - 0.5)
        assert core.tick(now) == [worker(b"w", HEARTBEAT)]
    assert mmi(core, b"s", 7.0) == b"200"


# --- dispatch --------------------------------------------------------------------------------


def test_a_request_waits_for_a_worker_and_goes_to_the_first_that_registers() -> None:
    core = new_core()
    assert core.receive(client(b"c", b"late", b"patience", b""), 0.0) == []
    assert core.tick(1.0) == []
    assert mmi(core, b"late") == b"404"  # waiting requests are no workers
    assert core.receive(worker(b"w", READY, b"late"), 1.5) == [
        request_to(b"w", b"c", b"patience", b"")
    ]


def test_a_reply_reaches_its_client_and_the_worker_takes_the_next_waiting_request() -> None:
    core = new_core()
    core.receive(client(b"c1", b"s", b"one"), 0.0)
    core.receive(client(b"c2", b"s", b"two"), 0.0)
    assert core.receive(worker(b"w", READY, b"s"), 0.0) == [request_to(b"w", b"c1", b"one")]
    assert core.receive(reply_from(b"w", b"c1", b"ONE", b""), 0.1) == [
        [b"c1", b"", MDPC01, b"s", b"ONE", b""],
        request_to(b"w", b"c2", b"two"),
    ]
    assert core.receive(reply_from(b"w", b"c2", b"TWO"), 0.2) == [
        [b"c2", b"", MDPC01, b"s", b"TWO"]
    ]


def test_idle_workers_are_used_least_recently_used_first() -> None:
    core = new_core()
    core.receive(worker(b"one", READY, b"lru"), 0.0)
    core.receive(worker(b"two", READY, b"lru"), 0.0)
    assert core.receive(client(b"c", b"lru", b"r1"), 0.0) == [request_to(b"one", b"c", b"r1")]
    assert core.receive(client(b"c", b"lru", b"r2"), 0.0) == [request_to(b"two", b"c", b"r2")]
    core.receive(reply_from(b"two", b"c", b"R2"), 0.1)  # two is now idle longer than one
    core.receive(reply_from(b"one", b"c", b"R1"), 0.2)
    assert core.receive(client(b"c", b"lru", b"r3"), 0.3) == [request_to(b"two", b"c", b"r3")]
    assert core.receive(client(b"c", b"lru", b"r4"), 0.3) == [request_to(b"one", b"c", b"r4")]


def test_waiting_requests_are_bounded_per_service(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core(max_waiting_requests=3)
    for index in range(6):
        assert core.receive(client(b"c", b"bounded", b"%d" % index), 0.0) == []
    assert core.receive(client(b"c", b"other", b"x"), 0.0) == []  # its own queue
    assert core.drops.totals == {"refused": 3}
    [refused] = [record.getMessage() for record in caplog.records]
    assert refused == (
        "refused a request for b'bounded': 3 requests already wait for a worker, "
        "the service's limit"
    )
    [first] = core.receive(worker(b"w", READY, b"bounded"), 0.0)
    served = [first[-1]]
    for _ in range(len(BAD_MESSAGES)):
        reply, *more = core.receive(reply_from(b"w", b"c", b"done"), 0.0)
        assert reply == [b"c", b"", MDPC01, b"bounded", b"done"]
        if not more:
            break
        [request] = more
        served.append(request[-1])
    assert served == [b"0", b"1", b"2"]  # 3, 4 and 5 were dropped


# --- a worker that dies or leaves while it holds a request ------------------------------------


def test_the_request_of_an_expired_worker_goes_back_to_the_head_of_its_queue() -> None:
    core = new_core()
    core.receive(worker(b"doomed", READY, b"s"), 0.0)
    assert core.receive(client(b"c", b"s", b"first"), 0.0) == [
        request_to(b"doomed", b"c", b"first")
    ]
    core.receive(client(b"c", b"s", b"second"), 0.0)
    core.tick(1.0)
    core.tick(2.0)
    core.tick(3.0)
    assert core.tick(4.0) == []  # forgotten, and nobody else to take its request
    assert core.receive(worker(b"next", READY, b"s"), 4.5) == [request_to(b"next", b"c", b"first")]
    assert core.receive(reply_from(b"next", b"c", b"1"), 4.6)[1] == request_to(
        b"next", b"c", b"second"
    )
    # The dead worker's late answer is not passed on: the request is someone else's now.
    assert core.receive(reply_from(b"doomed", b"c", b"late"), 4.7) == [
        worker(b"doomed", DISCONNECT)
    ]


def test_the_request_of_an_expired_worker_goes_to_an_idle_worker_at_the_same_tick() -> None:
    core = new_core()
    core.receive(worker(b"doomed", READY, b"s"), 0.0)
    core.receive(client(b"c", b"s", b"job"), 0.0)
    core.receive(worker(b"spare", READY, b"s"), 0.0)
    for now in (1.0, 2.0, 3.0, 4.0):
        out = core.tick(now)
        core.receive(worker(b"spare", HEARTBEAT), now)
    assert out == [request_to(b"spare", b"c", b"job"), worker(b"spare", HEARTBEAT)]


def test_the_request_of_a_worker_that_disconnects_goes_to_an_idle_worker_at_once() -> None:
    core = new_core()
    core.receive(worker(b"leaving", READY, b"s"), 0.0)
    core.receive(client(b"c", b"s", b"job"), 0.0)
    core.receive(worker(b"spare", READY, b"s"), 0.0)
    assert core.receive(worker(b"leaving", DISCONNECT), 0.5) == [request_to(b"spare", b"c", b"job")]


def test_a_second_ready_gets_disconnect_unregisters_and_hands_its_request_on() -> None:
    core = new_core()
    core.receive(worker(b"confused", READY, b"s"), 0.0)
    core.receive(client(b"c", b"s", b"job"), 0.0)
    core.receive(worker(b"spare", READY, b"s"), 0.0)
    assert core.receive(worker(b"confused", READY, b"s"), 0.5) == [
        worker(b"confused", DISCONNECT),
        request_to(b"spare", b"c", b"job"),
    ]
    assert core.tick(1.0) == [worker(b"spare", HEARTBEAT)]


# --- the RFC's rules for workers, and MMI ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[HEARTBEAT], [REPLY, b"client", b"", b"stray reply"]],
    ids=["HEARTBEAT", "REPLY"],
)
def test_a_command_from_an_unknown_worker_gets_disconnect(command: list[bytes]) -> None:
    core = new_core()
    assert core.receive(worker(b"stranger", *command), 0.0) == [worker(b"stranger", DISCONNECT)]
    assert core.tick(1.0) == []


def test_a_reply_from_an_idle_worker_gets_disconnect_and_unregisters() -> None:
    """RFC 7: 'The broker MUST respond to any valid but unexpected command by sending
    DISCONNECT'; a REPLY from a worker that was given no request is one."""
    core = new_core()
    core.receive(worker(b"idle", READY, b"s"), 0.0)
    assert core.receive(reply_from(b"idle", b"c", b"?"), 0.0) == [worker(b"idle", DISCONNECT)]
    assert mmi(core, b"s") == b"404"


def test_ready_for_the_mmi_namespace_gets_disconnect() -> None:
    """RFC 8: the broker 'MUST disconnect any workers that attempt to register services
    in this namespace'."""
    core = new_core()
    assert core.receive(worker(b"w", READY, b"mmi.mine"), 0.0) == [worker(b"w", DISCONNECT)]
    assert mmi(core, b"mmi.mine") == b"404"


def test_a_worker_that_disconnects_is_forgotten_and_hears_nothing_more() -> None:
    core = new_core()
    core.receive(worker(b"w", READY, b"leaving"), 0.0)
    assert core.receive(worker(b"w", DISCONNECT), 0.5) == []
    assert mmi(core, b"leaving") == b"404"
    assert core.tick(1.0) == []
    assert core.receive(worker(b"w", DISCONNECT), 1.5) == []  # twice is harmless


def test_mmi_answers() -> None:
    core = new_core()
    core.receive(worker(b"w", READY, b"here"), 0.0)
    core.receive(client(b"c", b"waiting-only", b"x"), 0.0)
    for service, body, expected in [
        (b"mmi.service", [b"here"], b"200"),
        (b"mmi.service", [b"gone"], b"404"),
        (b"mmi.service", [b"waiting-only"], b"404"),
        (b"mmi.service", [], b"404"),
        (b"mmi.nothing", [b"here"], b"501"),
    ]:
        assert core.receive(client(b"c", service, *body), 0.0) == [
            [b"c", b"", MDPC01, service, expected]
        ]
    core.receive(client(b"c", b"here", b"job"), 0.0)
    assert mmi(core, b"here") == b"200"  # a busy worker still counts


BAD_MESSAGES = [
    [],
    [b"no delimiter"],
    [b"peer", b""],
    [b"peer", b"not empty", MDPC01, b"svc"],
    [b"peer", b"", b"MDPX01", b"svc", b"body"],
    [b"peer", b"", MDPC01],
    [b"peer", b"", MDPW01],
    [b"peer", b"", MDPW01, b"\x09"],
    [b"peer", b"", MDPW01, READY],
    [b"peer", b"", MDPW01, REPLY, b"client"],
    [b"peer", b"", MDPW01, REPLY, b"client", b"not empty", b"body"],
]


def test_malformed_messages_are_dropped_and_summed_up_in_two_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core()
    core.receive(worker(b"peer", READY, b"still"), 0.0)
    for message in BAD_MESSAGES:
        assert core.receive(message, 0.0) == []
    # The first is explained at once, the rest summed up when the interval is over.
    [first] = [record.getMessage() for record in caplog.records]
    assert first == "dropped a message from b'': 0 frame(s), an MDP message has 3+"
    assert core.receive(client(b"c", b"still", b"ok"), 0.0) == [request_to(b"peer", b"c", b"ok")]
    core.receive(reply_from(b"peer", b"c", b"ok"), 0.0)
    core.tick(2.0)
    assert caplog.records[1:] == []  # the 10 s interval is not over yet
    core.tick(10.0)
    [summary] = [record.getMessage() for record in caplog.records if "more" in record.getMessage()]
    assert summary == (
        "10 more message(s) dropped or requeued in the last 10 s: 2 too short, 2 bad REPLY, "
        "1 no delimiter, 1 bad header, 1 no service, 1 no command, 1 unknown command, "
        "1 bad READY"
    )


# --- no request lost or answered twice, whatever the workers do ----------------------------

WORKERS = [b"w0", b"w1", b"w2"]
ACTIONS = st.one_of(
    st.tuples(st.just("request"), st.sampled_from([b"c0", b"c1"])),
    st.tuples(
        st.sampled_from(["ready", "reply", "heartbeat", "disconnect"]), st.sampled_from(WORKERS)
    ),
    st.tuples(st.just("wait"), st.sampled_from([0.25, 0.5, 1.0, 2.5])),
)


class Peers:
    """Workers that obey the broker (a DISCONNECT resets them) and clients that count."""

    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.now = 0.0
        self.holding: dict[bytes, tuple[bytes, bytes]] = {}
        self.sent: list[tuple[bytes, bytes]] = []
        self.answered: list[tuple[bytes, bytes]] = []

    def deliver(self, messages: list[Message]) -> None:
        for identity, empty, header, *rest in messages:
            assert empty == b""
            if header == MDPC01:
                assert rest[0] == b"s", rest
                self.answered.append((identity, rest[1]))
            elif rest == [DISCONNECT]:
                self.holding.pop(identity, None)
            elif rest[0] == REQUEST:
                assert identity not in self.holding, "a worker got a second request"
                self.holding[identity] = (rest[1], rest[3])

    def send(self, message: Message) -> None:
        self.deliver(self.core.receive(message, self.now))

    def act(self, action: str, target: bytes | float) -> None:
        if action == "wait":
            assert isinstance(target, float)
            self.now += target
            self.deliver(self.core.tick(self.now))
        elif action == "request":
            assert isinstance(target, bytes)
            body = b"%d" % len(self.sent)
            self.sent.append((target, body))
            self.send(client(target, b"s", body))
        elif action == "reply":
            assert isinstance(target, bytes)
            if target in self.holding:
                client_identity, body = self.holding.pop(target)
                self.send(reply_from(target, client_identity, body))
        else:
            assert isinstance(target, bytes)
            command = {"ready": READY, "heartbeat": HEARTBEAT, "disconnect": DISCONNECT}[action]
            if command != HEARTBEAT:
                self.holding.pop(target, None)  # it leaves, or starts a new session
            self.send(worker(target, command, *([b"s"] if command == READY else [])))


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, max_size=60))
def test_every_request_is_answered_exactly_once(actions: list[tuple[str, bytes | float]]) -> None:
    core = new_core(request_expiry=math.inf)
    peers = Peers(core)
    for action, target in actions:
        peers.act(action, target)
    # The old workers fall silent and expire; a reliable one serves what is left.
    for _ in range(5):
        peers.act("wait", 1.0)
    peers.send(worker(b"final", READY, b"s"))
    while b"final" in peers.holding:
        peers.act("reply", b"final")
    assert sorted(peers.answered) == sorted(peers.sent)
    assert (core.queued_requests, core.queued_bytes) == (0, 0)
