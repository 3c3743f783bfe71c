"""The MDP broker against a plain blocking pyzmq broker, and under 300 governors' load.

1. Echo, 64-byte bodies, 1 and 64 requests in flight over ipc: palaestrio's client (in
   this process) and palaestrio's echo worker (a process) are the same for both brokers;
   only the broker process differs: palaestrio's, or `_mdp_reference_broker.py` (the
   zguide's design, plain blocking pyzmq). Target: palaestrio ≥ 2× the reference's
   requests/s. The broker's own CPU time per request (from /proc) is shown beside it:
   the client and worker take their share of the 2 cores in both cases.
2. 300 simulated governors (in 2 processes, plain blocking pyzmq: they stand for
   governors on other machines), each sending 5 progress messages (100 B) and 5 record
   batches (20 KB) per second to an executor and a store service (palaestrio's worker,
   a process each): p99 latency ≤ 50 ms and no message lost.

    python benchmarks/mdp_broker.py [--duration 3] [--runs 3] [--governor-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from _report import record
from mdp_echo import child, timed_run
from palaestrio.mdp.client import open_client
from palaestrio.mdp.worker import serve_worker

HERE = Path(__file__).parent
BROKERS = {
    "reference": ([sys.executable, str(HERE / "_mdp_reference_broker.py")], b"reference broker"),
    "palaestrio": ([sys.executable, "-m", "palaestrio.mdp.broker"], b"palaestrio broker"),
}
ECHO_WORKER = [sys.executable, "-m", "palaestrio.mdp.worker", "--service", "echo", "--echo"]
SPEEDUP_TARGET = 2.0
GOVERNORS, GOVERNOR_PROCESSES, RATE = 300, 2, 5.0
PROGRESS, BATCH = b"p" * 100, b"b" * 20_000
P99_TARGET = 0.050
POLL_SLICE = 0.002
LOST_AFTER = 5.0
"""A request without a reply this long after it was sent counts as lost."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def broker_process(kind: str, endpoint: str) -> AsyncIterator[trio.Process]:
    command, ready = BROKERS[kind]
    async with child([*command, "--bind", endpoint], ready) as process:
        yield process


async def echo_rates(kind: str, endpoint: str, duration: float, runs: int) -> dict[int, list]:
    """Per in-flight count: (requests/s, broker CPU µs per request) of each run."""
    results: dict[int, list[tuple[float, float]]] = {1: [], 64: []}
    async with (
        broker_process(kind, endpoint) as broker,
        child([*ECHO_WORKER, "--connect", endpoint], b"palaestrio worker ready"),
        open_client(endpoint) as client,
    ):
        await timed_run(client, 64, 0.5)  # warm up; the worker's READY is in
        for _ in range(runs):
            for in_flight in results:
                cpu = cpu_seconds(broker.pid)
                rate = await timed_run(client, in_flight, duration)
                used = cpu_seconds(broker.pid) - cpu
                results[in_flight].append((rate, used / (rate * duration) * 1e6))
    return results


def run_governors(endpoint: str, count: int, seconds: float) -> None:
    """Child process: `count` governors, each with a DEALER per service (as a governor's
    client has one per request in flight), all sending on schedule from one thread.

    Plain blocking pyzmq, not palaestrio's trio client: these stand for governors on
    other machines, so they should take as little of this machine's CPU (and the
    broker's) as they can. A request is lost when no reply came within LOST_AFTER of
    its sending. A governor sends its next message only once the last one is answered (a
    store sender waits for its acknowledgement too): a slot that finds it unanswered
    passes, and is counted as skipped.
    """
    import heapq
    import time

    import zmq

    context = zmq.Context()
    poller = zmq.Poller()
    due: list[tuple[float, int]] = []  # (when, socket index)
    sockets: list[tuple[zmq.Socket[bytes], bytes, bytes]] = []
    start = time.monotonic() + 0.5  # every socket connected first
    stop = start + seconds
    for index in range(count * 2):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        service, body = (b"executor", PROGRESS) if index % 2 else (b"store", BATCH)
        sockets.append((sock, service, body))
        due.append((start + random.random() / RATE, index))  # not in step
    heapq.heapify(due)
    sent_at: dict[int, float] = {}
    out: dict = {"sent": 0, "skipped": 0, "latencies": []}
    index_of = {entry[0]: index for index, entry in enumerate(sockets)}
    polled = next_lost_check = 0.0
    while due or sent_at:
        now = time.monotonic()
        while due and due[0][0] <= now:
            when, index = heapq.heappop(due)
            if index in sent_at:  # the last one is still unanswered: this slot passes
                out["skipped"] += 1
            else:
                sock, service, body = sockets[index]
                sock.send_multipart([b"", b"MDPC01", service, body], copy=False)
                sent_at[index] = now
                out["sent"] += 1
            if when + 1 / RATE < stop:
                heapq.heappush(due, (when + 1 / RATE, index))
        if now >= next_lost_check:
            next_lost_check = now + 0.25
            for index, when in list(sent_at.items()):
                if now - when > LOST_AFTER:
                    del sent_at[index]  # lost: counted as sent without a latency
        # A poll costs O(sockets): at most one per POLL_SLICE (latencies read up to
        # that much high, never low).
        time.sleep(max(0.0, polled + POLL_SLICE - now))
        polled = time.monotonic()
        wait = (due[0][0] - polled) if due else 0.05
        for sock, _ in poller.poll(max(0.0, min(wait, 0.05)) * 1e3):
            index = index_of[sock]
            sock.recv_multipart()
            answered = time.monotonic()
            if index in sent_at:
                out["latencies"].append(answered - sent_at.pop(index))
    for sock, _, _ in sockets:
        sock.close()
    context.term()
    print(json.dumps(out), flush=True)


async def run_worker(endpoint: str, service: str) -> None:
    """Child process: the executor's or the store's service (each has a process of its
    own in palaestrio), with palaestrio's worker."""

    async def acknowledge(body: list[bytes]) -> list[bytes]:
        return [b"ok"]

    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_worker, endpoint, service, acknowledge))
        print("worker ready", flush=True)


async def governor_load(kind: str, endpoint: str, seconds: float) -> dict:
    me = [sys.executable, __file__]
    async with (
        broker_process(kind, endpoint) as broker,
        child([*me, "worker", endpoint, "executor"], b"worker ready") as executor,
        child([*me, "worker", endpoint, "store"], b"worker ready") as store,
    ):
        pids = {"broker": broker.pid, "workers": executor.pid, "store": store.pid}
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        per_process = GOVERNORS // GOVERNOR_PROCESSES
        command = [*me, "governors", endpoint, str(per_process), str(seconds)]
        results: list[dict] = []

        async def governors() -> None:
            done = await trio.run_process(command, capture_stdout=True)
            results.append(json.loads(done.stdout))

        async with trio.open_nursery() as nursery:
            for _ in range(GOVERNOR_PROCESSES):
                nursery.start_soon(governors)
        cpu = {name: cpu_seconds(pids[name]) - cpu[name] for name in pids}
        cpu["workers"] += cpu.pop("store")
    latencies = sorted(x for result in results for x in result["latencies"])
    sent = sum(result["sent"] for result in results)
    skipped = sum(result["skipped"] for result in results)
    lost = sent - len(latencies)
    return {"sent": sent, "lost": lost, "latencies": latencies, "skipped": skipped, "cpu": cpu}


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


async def main(args: argparse.Namespace) -> None:
    print(
        f"MDP broker benchmarks; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"{'measure':<46}{'reference':>12}{'palaestrio':>12}{'target':>14}  result")
    directory = tempfile.mkdtemp(prefix="mdp-broker-bench-")
    try:
        echo = {}
        for kind in BROKERS:
            endpoint = f"ipc://{directory}/{kind}.ipc"
            echo[kind] = await echo_rates(kind, endpoint, args.duration, args.runs)
        for in_flight in (1, 64):
            rate = {k: statistics.median(r for r, _ in echo[k][in_flight]) for k in BROKERS}
            cpu = {k: statistics.median(c for _, c in echo[k][in_flight]) for k in BROKERS}
            ratio = rate["palaestrio"] / rate["reference"]
            record(f"broker_ratio_{in_flight}", ratio, rates=rate)
            name = f"echo, {in_flight} in flight: requests/s"
            print(
                f"{name:<46}{rate['reference']:>12,.0f}{rate['palaestrio']:>12,.0f}"
                f"{f'≥ {SPEEDUP_TARGET:g}×':>14}  {ratio:.2f}× {verdict(ratio >= SPEEDUP_TARGET)}"
            )
            name = f"echo, {in_flight} in flight: broker CPU µs/request"
            saving = cpu["reference"] / cpu["palaestrio"]
            print(
                f"{name:<46}{cpu['reference']:>12.1f}{cpu['palaestrio']:>12.1f}"
                f"{'':>14}  {saving:.2f}× less CPU"
            )
        load = {}
        for kind in BROKERS:
            endpoint = f"ipc://{directory}/{kind}-governors.ipc"
            load[kind] = await governor_load(kind, endpoint, args.governor_seconds)
        p99 = {k: load[k]["latencies"][int(0.99 * len(load[k]["latencies"]))] for k in load}
        record("governors_p99_seconds", p99["palaestrio"])
        lost = load["palaestrio"]
        record("governors_lost", lost["lost"], sent=lost["sent"], skipped=lost["skipped"])
        name = f"{GOVERNORS} governors: p99 latency ms"
        print(
            f"{name:<46}{p99['reference'] * 1e3:>12.1f}{p99['palaestrio'] * 1e3:>12.1f}"
            f"{f'≤ {P99_TARGET * 1e3:g}':>14}  {verdict(p99['palaestrio'] <= P99_TARGET)}"
        )
        for part in ("broker", "workers"):
            name = f"{GOVERNORS} governors: {part} CPU s in {args.governor_seconds:g} s"
            cpu = {k: f"{load[k]['cpu'][part]:.1f}" for k in load}
            print(f"{name:<46}{cpu['reference']:>12}{cpu['palaestrio']:>12}")
        name = f"{GOVERNORS} governors: lost of sent (skipped)"
        lost = {k: f"{load[k]['lost']}/{load[k]['sent']} ({load[k]['skipped']})" for k in load}
        print(
            f"{name:<40}{lost['reference']:>18}{lost['palaestrio']:>18}{'0':>8}"
            f"  {verdict(load['palaestrio']['lost'] == 0)}"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["governors"]:
        endpoint, count, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        run_governors(endpoint, count, seconds)
    elif sys.argv[1:2] == ["worker"]:
        trio.run(run_worker, sys.argv[2], sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
        parser.add_argument("--duration", type=float, default=3.0, help="seconds per echo run")
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--governor-seconds", type=float, default=10.0)
        trio.run(main, parser.parse_args())
