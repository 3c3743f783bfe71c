"""Fuzz: hypothesis throws random and near-valid frame lists at the standalone broker
from raw DEALER sockets; after every example a normal request must still get its reply.

The test is synchronous (blocking pyzmq), one hypothesis example per fresh DEALER, and
the broker runs as `python -m palaestrio.mdp.broker` for the whole test, so a crash or a
wedged loop anywhere in the run is caught by the next example's probe.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdp_plain import (
    DISCONNECT,
    HEARTBEAT,
    MDPC01,
    MDPW01,
    READY,
    REPLY,
    REQUEST,
    PlainClient,
    PlainWorker,
)
from mdp_support import collect_garbage_in_test  # noqa: F401

PROBE_TIMEOUT = 5.0
PYTHON = [sys.executable, "-W", "default::ResourceWarning"]


@dataclass
class Rig:
    endpoint: str
    broker: subprocess.Popen[bytes]
    context: zmq.Context[zmq.Socket[bytes]]
    probe_service: bytes
    probes: int = 0


def _wait_for_line(process: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> bytes:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output from {process.args} within {timeout} s")
    line = process.stdout.readline()
    assert line.startswith(prefix), line
    return line


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    endpoint = f"ipc://{tmp_path}/fuzz.ipc"
    errors = tmp_path / "broker.stderr"
    with open(errors, "wb") as error_file:
        broker = subprocess.Popen(
            [*PYTHON, "-m", "palaestrio.mdp.broker", "--bind", endpoint],
            stdout=subprocess.PIPE,
            stderr=error_file,
            start_new_session=True,
        )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    stop = threading.Event()
    probe_service = f"fuzz-probe-{uuid.uuid4()}".encode()
    worker = PlainWorker(endpoint, probe_service)
    runner = threading.Thread(target=worker.run, args=(stop,))
    try:
        _wait_for_line(broker, b"palaestrio broker listening on ", 10.0)
        runner.start()
        rig = Rig(endpoint, broker, context, probe_service)
        yield rig
        # Afterwards: a fresh plain client still gets its reply, and the broker stops cleanly.
        with PlainClient(endpoint) as client:
            assert client.request(probe_service, b"final", timeout=PROBE_TIMEOUT) == [b"final"]
        assert rig.probes > 0
        assert worker.violations == []
        broker.terminate()
        assert broker.wait(5) == 0
    finally:
        stop.set()
        if runner.is_alive():
            runner.join()
        context.term()
        if broker.poll() is None:
            broker.kill()
            broker.wait()
        assert broker.stdout is not None
        broker.stdout.close()
    log = errors.read_text()
    assert "Traceback" not in log, log
    assert "ResourceWarning" not in log, log


COMMANDS = [READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT, b"\x00", b"\x06", b"\xff"]
FRAME = st.one_of(
    st.sampled_from(
        [b"", MDPC01, MDPW01, *COMMANDS, b"mmi.service", b"mmi.nope", b"echo", b"\x00\x80\x00"]
    ),
    st.binary(max_size=40),
)
WORKER_LIKE = st.builds(
    lambda command, rest: [b"", MDPW01, command, *rest],
    st.sampled_from(COMMANDS),
    st.lists(FRAME, max_size=4),
)
CLIENT_LIKE = st.builds(
    lambda service, rest: [b"", MDPC01, service, *rest],
    st.one_of(st.sampled_from([b"mmi.service", b"mmi.other", b"echo", b""]), FRAME),
    st.lists(FRAME, max_size=3),
)
MESSAGE = st.one_of(st.lists(FRAME, min_size=1, max_size=8), WORKER_LIKE, CLIENT_LIKE)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(messages=st.lists(MESSAGE, min_size=1, max_size=6))
def test_random_frames_never_stop_the_broker(rig: Rig, messages: list[list[bytes]]) -> None:
    assert rig.broker.poll() is None, "broker process died"
    sock = rig.context.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(rig.endpoint)
        for message in messages:
            sock.send_multipart(message)
        # The probe goes out on the same connection, so the broker has handled every
        # fuzz message before it; the reply proves it still routes normally.
        token = uuid.uuid4().bytes
        sock.send_multipart([b"", MDPC01, rig.probe_service, token])
        expected = [b"", MDPC01, rig.probe_service, token]
        while True:
            assert sock.poll(int(PROBE_TIMEOUT * 1000)), f"no probe reply after {messages!r}"
            if sock.recv_multipart() == expected:
                break
        rig.probes += 1
    finally:
        sock.close()
