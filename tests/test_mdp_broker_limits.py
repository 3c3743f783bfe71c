"""The broker core's bounds on its input (issue 16): requests nobody serves expire and
free their memory, queues refuse what is over their count or bytes, the total queued
memory is capped, and a flood of garbage costs a few log lines. Clock-free, like
test_mdp_broker_core.py: times are handed in.
"""

from __future__ import annotations

import logging
import random

import pytest

from mdp_plain import MDPC01, MDPW01, READY, REPLY, REQUEST
from palaestrio.mdp.broker_core import REQUEST_OVERHEAD, BrokerCore
from test_mdp_broker_core import client, new_core, reply_from, request_to, worker

MB = 1_000_000
BIG = b"x" * (5 * MB)


def drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.endswith("broker")]


def test_big_requests_for_a_service_nobody_serves_expire_and_free_their_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core(request_expiry=30.0)
    for sender in range(5):  # each sender leaves at once: nobody waits for these
        assert core.receive(client(b"gone-%d" % sender, b"nobody", BIG), float(sender)) == []
    assert core.queued_requests == 5
    assert core.queued_bytes == 5 * (len(BIG) + REQUEST_OVERHEAD + len(b"gone-0"))
    core.tick(30.0)
    assert core.queued_requests == 5  # 30 s is not longer than 30 s
    core.tick(33.5)  # the first four have waited longer now
    assert core.queued_requests == 1
    core.tick(35.0)
    assert (core.queued_requests, core.queued_bytes) == (0, 0)
    assert core.drops.totals == {"expired": 5}
    assert drop_lines(caplog)[0] == (
        "dropped a request for b'nobody': no worker took it within 30 s"
    )
    # A worker that comes now gets nothing stale.
    assert core.receive(worker(b"w", READY, b"nobody"), 36.0) == []


def test_a_request_that_waits_less_than_the_expiry_is_served() -> None:
    core = new_core(request_expiry=30.0)
    core.receive(client(b"c", b"slow", b"patient"), 0.0)
    for second in range(1, 30):
        core.tick(float(second))
    assert core.receive(worker(b"w", READY, b"slow"), 29.5) == [request_to(b"w", b"c", b"patient")]
    assert core.queued_bytes == 0


def test_total_queued_memory_is_capped_and_the_refusal_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core(max_queued_bytes=12 * MB)
    for index in range(5):
        core.receive(client(b"c%d" % index, b"svc-%d" % index, BIG), 0.0)
    assert core.queued_requests == 2
    assert core.queued_bytes <= 12 * MB
    assert core.drops.totals == {"refused": 3}
    assert drop_lines(caplog) == [
        "refused a request for b'svc-2': it takes 5,000,130 bytes and requests for all "
        "services take 10,000,260, over the broker's cap of 12,000,000"
    ]
    assert core.receive([b"probe", b"", MDPC01, b"mmi.service", b"svc-2"], 0.0) == [
        [b"probe", b"", MDPC01, b"mmi.service", b"404"]
    ]
    # Once a worker takes one, there is room again.
    assert core.receive(worker(b"w", READY, b"svc-0"), 1.0) == [request_to(b"w", b"c0", BIG)]
    assert core.receive(client(b"c9", b"svc-9", BIG), 1.0) == []
    assert core.queued_requests == 2


def test_a_service_queue_is_bounded_in_bytes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core(max_waiting_bytes=11 * MB)
    for _ in range(3):
        core.receive(client(b"c", b"full", BIG), 0.0)
    core.receive(client(b"c", b"other", BIG), 0.0)  # a queue of its own
    assert core.queued_requests == 3
    assert drop_lines(caplog) == [
        "refused a request for b'full': it takes 5,000,129 bytes and 10,000,258 already "
        "wait, over the service's limit of 11,000,000 bytes"
    ]
    # Far too big on its own, even for an empty queue.
    core.receive(client(b"c", b"empty", b"x" * (12 * MB)), 0.0)
    assert core.drops.totals == {"refused": 2}


def test_a_requeued_request_is_counted_again_and_still_served() -> None:
    core = new_core(max_queued_bytes=6 * MB)
    core.receive(worker(b"dies", READY, b"s"), 0.0)
    assert core.receive(client(b"c", b"s", BIG), 0.0) == [request_to(b"dies", b"c", BIG)]
    assert core.queued_bytes == 0  # a worker holds it
    core.receive(client(b"c", b"s", BIG), 0.0)  # it waits, and fills the cap
    core.tick(4.0)  # the worker went silent: its request goes back, over the cap
    assert core.queued_requests == 2
    core.receive(worker(b"w", READY, b"s"), 4.0)
    core.receive(reply_from(b"w", b"c", b"ok"), 4.0)
    core.receive(reply_from(b"w", b"c", b"ok"), 4.0)
    assert (core.queued_requests, core.queued_bytes) == (0, 0)


def test_twenty_thousand_random_messages_cost_a_few_log_lines_and_no_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="palaestrio.mdp.broker")
    core = new_core()
    noise = random.Random(16)
    headers = [b"", MDPC01, MDPW01, b"MDPX01"]
    commands = [b"", READY, REPLY, REQUEST, b"\x09"]
    for index in range(20_000):
        # One ROUTER identity per connection: a few fuzzing peers.
        frames = [noise.choice([b"p1", b"p2", b"p3"])]
        frames += [noise.randbytes(noise.randrange(4)) for _ in range(noise.randrange(6))]
        if noise.random() < 0.5 and len(frames) >= 3:
            frames[1] = b""
            frames[2] = noise.choice(headers)
            if frames[2] == MDPW01 and len(frames) > 3:
                frames[3] = noise.choice(commands)
        core.receive(frames, index / 1000)  # 20 s in all
        if index % 2500 == 0:
            core.tick(index / 1000)
    core.tick(25.0)
    core.tick(35.0)
    lines = drop_lines(caplog)
    assert 3 <= len(lines) <= 4, lines
    assert sum(core.drops.totals.values()) > 15_000
    # Random service names and random workers leave nothing behind once they expire.
    assert core.queued_bytes < 20_000 * REQUEST_OVERHEAD
    core.tick(100.0)
    assert (core.queued_requests, core.queued_bytes) == (0, 0)
    assert core._services == {}
    assert core.receive(worker(b"w", READY, b"real"), 100.0) == []
    assert core.receive(client(b"c", b"real", b"ok"), 100.0) == [request_to(b"w", b"c", b"ok")]


def test_default_bounds_are_set() -> None:
    core = BrokerCore()
    assert core.receive(client(b"c", b"s", b"x"), 0.0) == []
    core.tick(59.0)
    assert core.queued_requests == 1
    core.tick(62.0)  # ticks come every 2.5 s
    assert core.queued_requests == 0
    assert (core.drops.totals, MDPW01) == ({"expired": 1}, b"MDPW01")
