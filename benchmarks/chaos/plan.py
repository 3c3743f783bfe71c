"""What an iteration does, drawn from one `random.Random`: the batch and its faults."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = (
    "kill-governor",
    "kill-store",
    "kill-executor",
    "sigint",
    "sigterm",
    "sighup",
    "broker-frames",
    "hang",
    "db-locked",
    "db-readonly",
    "db-full",
    "db-deleted",
)
MOUNTING = frozenset({"db-readonly", "db-full"})
"""Kinds that put the store's directory on a mount of its own: one per iteration."""
ENDING = frozenset({"kill-executor", "sigint", "sigterm", "sighup", "hang"})
"""Kinds after which the executor is expected to exit within the exit bound."""
TWO_FAULTS = 0.2


@dataclass(frozen=True)
class RunPlan:
    uid: str
    max_iter: int
    episodes: int
    hang_at: int | None = None
    """Update number at which the run's environment blocks (the `hang` fault)."""

    @property
    def steps(self) -> int:
        return self.max_iter * self.episodes


@dataclass(frozen=True)
class Fault:
    kind: str
    delay: float
    """Seconds after the fault's trigger (start, first governor, hang) it strikes."""
    amount: float = 0.0
    """Kind-specific: seconds a lock is held, frames sent into the broker, 1 for a
    signal timed from the first governor (0: from the start), or 1 for a store
    read-only from the start (created first, then its directory remounted)."""
    seed: int = 0
    """Seeds the fault's own choices (which governor, the frames' bytes)."""


@dataclass(frozen=True)
class Plan:
    index: int
    runs: list[RunPlan]
    parallel: int
    faults: list[Fault] = field(default_factory=list)

    def describe(self) -> str:
        faults = ", ".join(f"{f.kind}@{f.delay:.2f}s" for f in self.faults)
        steps = "+".join(str(run.steps) for run in self.runs)
        return f"{len(self.runs)} runs (-p {self.parallel}, {steps} steps): {faults}"


def draw(rng: random.Random, index: int, among: tuple[str, ...] = KINDS) -> Plan:
    """The plan of iteration `index`; `rng` is the suite's one generator."""
    count = 2 if rng.random() < TWO_FAULTS and len(among) > 1 else 1
    kinds: list[str] = []
    while len(kinds) < count:
        kind = rng.choice(among)
        if kind in kinds or (kind in MOUNTING and MOUNTING & set(kinds)):
            continue
        kinds.append(kind)
    faults = [_fault(rng, kind) for kind in kinds]
    runs = [
        RunPlan(f"run-{n}", max_iter=rng.randint(20, 80), episodes=rng.randint(1, 2))
        for n in range(rng.randint(2, 3))
    ]
    if "hang" in kinds:
        runs[0] = RunPlan("run-0", max_iter=60, episodes=1, hang_at=rng.randint(5, 50))
    return Plan(index, runs, parallel=rng.randint(2, len(runs)), faults=faults)


def _fault(rng: random.Random, kind: str) -> Fault:
    fault = _timing(rng, kind)
    return Fault(fault.kind, fault.delay, fault.amount, seed=rng.getrandbits(32))


def _timing(rng: random.Random, kind: str) -> Fault:
    if kind in ("sigint", "sigterm", "sighup", "kill-executor"):
        # A third from the start (before the executor is up, often), the rest once a
        # governor runs.
        return Fault(kind, rng.uniform(0.0, 2.0), amount=rng.choice([0.0, 1.0, 1.0]))
    if kind in ("kill-governor", "kill-store"):
        return Fault(kind, rng.uniform(0.0, 1.5))
    if kind == "broker-frames":
        return Fault(kind, rng.uniform(0.3, 1.5), amount=rng.randint(100, 3000))
    if kind == "hang":
        return Fault(kind, rng.uniform(1.0, 2.0))
    if kind == "db-locked":
        return Fault(kind, rng.uniform(0.3, 2.5), amount=rng.uniform(0.5, 8.0))
    if kind == "db-readonly":
        # Mid-run, descriptors open for writing keep writing: new files (the journal,
        # another connection) meet the read-only mount. From the start, every write does.
        return Fault(kind, rng.uniform(0.5, 3.0), amount=rng.choice([0.0, 1.0]))
    return Fault(kind, rng.uniform(0.5, 3.0))
