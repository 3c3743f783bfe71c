"""The broker over TCP with CURVE: admitted peers are served, every other peer gets
nothing and the broker says so once; plain TCP where other machines could reach it is
refused; an executor runs governor processes end to end with CURVE on."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import pytest
import trio
import zmq

from executor_support import load_run
from palaestrio import curve
from palaestrio.curve import ClientKeys, CurveServer, InsecureEndpoint
from palaestrio.executor import Child, ChildExit, LocalLauncher, open_executor
from palaestrio.executor.launch import LineCallback
from palaestrio.executor.supervisor import governor_environment
from palaestrio.mdp import broker
from palaestrio.mdp.client import open_client
from palaestrio.mdp.worker import serve_worker


async def echo(frames: list[bytes]) -> list[bytes]:
    return frames


def outsiders(server: CurveServer) -> list[ClientKeys | None]:
    """An unknown client key, a wrong server key, and no CURVE at all."""
    unknown_public, unknown_secret = zmq.curve_keypair()
    wrong_server, _ = zmq.curve_keypair()
    admitted = server.admit()
    server.revoke(admitted)  # a key that was good once (a governor of an ended run)
    return [
        ClientKeys(server.public, unknown_public, unknown_secret),
        ClientKeys(wrong_server, admitted.public, admitted.secret),
        admitted,
        None,
    ]


async def test_only_admitted_keys_are_served(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="palaestrio.mdp.broker")
    server = CurveServer.generate()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            bind = partial(broker.serve, "tcp://127.0.0.1:*", curve_server=server)
            endpoint = await nursery.start(bind)
            with curve.registered(endpoint, server.admit()):
                await nursery.start(partial(serve_worker, endpoint, "echo", echo))
                async with open_client(endpoint) as client:
                    assert await client.request("echo", b"hello") == [b"hello"]
            for keys in outsiders(server):
                with curve.registered(endpoint, keys) if keys else nullcontext():
                    async with open_client(endpoint) as client:
                        with trio.move_on_after(1.0) as waited:
                            await client.request("echo", b"let me in")
                assert waited.cancelled_caught, f"a peer with {keys} was served"
            nursery.cancel_scope.cancel()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    # Two peers reached ZAP (the unknown and the revoked key), each retried many times.
    assert len(refused) == 2, refused
    assert all("127.0.0.1" in line for line in refused), refused


async def test_plain_tcp_on_a_routable_interface_needs_insecure() -> None:
    with trio.fail_after(10):
        with pytest.raises(InsecureEndpoint, match="--insecure"):
            await broker.serve("tcp://0.0.0.0:*")
        async with trio.open_nursery() as nursery:
            endpoint = await nursery.start(partial(broker.serve, "tcp://0.0.0.0:*", insecure=True))
            assert endpoint.startswith("tcp://0.0.0.0:")
            # Loopback stays plain-capable: nobody else's machine reaches it.
            await nursery.start(broker.serve, "tcp://127.0.0.1:*")
            nursery.cancel_scope.cancel()


class RecordingLauncher(LocalLauncher):
    """A local launcher that remembers each governor's argv and extra environment."""

    def __init__(self) -> None:
        super().__init__(env=governor_environment())
        self.launched: list[tuple[list[str], dict[str, str]]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str = "",
        env: Mapping[str, str] | None = None,
        on_output_line: LineCallback | None = None,
        task_status: trio.TaskStatus[Child] = trio.TASK_STATUS_IGNORED,
    ) -> ChildExit:
        self.launched.append((list(argv), dict(env or {})))
        return await super().run(
            argv, name=name, env=env, on_output_line=on_output_line, task_status=task_status
        )


async def test_an_executor_runs_governors_over_curve(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    runs = [load_run(tmp_path, f"curve-{i}") for i in range(2)]
    with trio.fail_after(60):
        async with open_executor(
            2,
            f"sqlite:///{tmp_path / 'runs.db'}",
            broker_uri="tcp://127.0.0.1:*",
            curve=True,
            launcher=launcher,
        ) as executor:
            executor.schedule(runs)
    assert [info.status for info in executor.experiment_runs()] == ["finished", "finished"]
    assert executor.curve_server is not None
    secrets = [env[curve.SECRET_KEY_VARIABLE] for _, env in launcher.launched]
    assert len(set(secrets)) == 2, "each governor has a key pair of its own"
    for argv, env in launcher.launched:
        assert env[curve.SERVER_KEY_VARIABLE] == executor.curve_server.public.decode()
        assert not any(secret in " ".join(argv) for secret in secrets), "keys in argv"
    # The governors' keys died with their runs: only the executor's own is left.
    assert len(executor.curve_server.admitted) == 1
