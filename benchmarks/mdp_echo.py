"""MDP echo throughput: palaestrio client -> broker -> echo worker, 64-byte bodies.

Three processes by default: this script is the client, the broker runs as
`python -m palaestrio.mdp.broker` and the worker as `python -m palaestrio.mdp.worker
--echo`. With `--broker client` the broker runs as a task inside this client process
instead (two processes). Prints requests/s for 1 and 64 requests in flight over ipc://
and tcp://127.0.0.1, each the median of 3 timed runs.

    python benchmarks/mdp_echo.py [--duration 2] [--runs 3] [--broker process|client]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from palaestrio.mdp import broker
from palaestrio.mdp.client import Client, open_client

BODY = b"x" * 64
IN_FLIGHT = (1, 64)
TARGETS = {("ipc", 1): 4_000, ("ipc", 64): 15_000}


def free_tcp_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@asynccontextmanager
async def child(command: list[str], ready: bytes) -> AsyncIterator[trio.Process]:
    """A helper process, started in its own session and ready once it printed `ready`."""
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(30):
            while ready not in output:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"{command} exited before it was ready: {output!r}")
                output += chunk
        yield process
    finally:
        with trio.move_on_after(10, shield=True):
            if process.returncode is None:
                process.terminate()
                with trio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                process.kill()
            await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()


@asynccontextmanager
async def broker_at(endpoint: str, where: str) -> AsyncIterator[None]:
    if where == "client":
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(broker.serve, endpoint))
            yield
            nursery.cancel_scope.cancel()
    else:
        command = [sys.executable, "-m", "palaestrio.mdp.broker", "--bind", endpoint]
        async with child(command, b"palaestrio broker listening on"):
            yield


async def timed_run(client: Client, in_flight: int, duration: float) -> float:
    """Requests per second with `in_flight` tasks each sending back to back."""
    done = 0
    deadline = trio.current_time() + duration

    async def sender() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            reply = await client.request("echo", BODY)
            assert reply == [BODY]
            done += 1

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(sender)
    return done / (trio.current_time() - started)


async def measure(transport: str, where: str, duration: float, runs: int) -> dict[int, list[float]]:
    directory = tempfile.mkdtemp(prefix="mdp-bench-")  # mode 0700
    try:
        endpoint = f"ipc://{directory}/broker.ipc" if transport == "ipc" else free_tcp_endpoint()
        worker = [sys.executable, "-m", "palaestrio.mdp.worker"]
        worker += ["--connect", endpoint, "--service", "echo", "--echo"]
        async with (
            broker_at(endpoint, where),
            child(worker, b"palaestrio worker ready"),
            open_client(endpoint) as client,
        ):
            # Warm up: the first request also waits for the worker's READY.
            await timed_run(client, 64, 0.5)
            return {
                n: [await timed_run(client, n, duration) for _ in range(runs)] for n in IN_FLIGHT
            }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    where = "its own process" if args.broker == "process" else "the client process"
    print(
        f"MDP echo, {len(BODY)}-byte bodies, client and echo worker in separate processes, "
        f"broker in {where}; median of {args.runs} runs of {args.duration:g} s; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    header = f"{'transport':<10}{'in flight':>10}"
    header += "".join(f"{f'run {i + 1}':>10}" for i in range(args.runs))
    header += f"{'median':>10}{'target':>10}"
    print(header)
    for transport in args.transports:
        results = await measure(transport, args.broker, args.duration, args.runs)
        for in_flight, rates in results.items():
            target = TARGETS.get((transport, in_flight))
            median = statistics.median(rates)
            verdict = (
                "" if target is None else f"{target:>8,}{' ok' if median >= target else ' MISS'}"
            )
            row = f"{transport:<10}{in_flight:>10}"
            row += "".join(f"{rate:>10,.0f}" for rate in rates)
            row += f"{median:>10,.0f}  {verdict}"
            print(row, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--broker", choices=["process", "client"], default="process")
    parser.add_argument("--transports", nargs="+", choices=["ipc", "tcp"], default=["ipc", "tcp"])
    trio.run(main, parser.parse_args())
