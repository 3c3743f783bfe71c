"""`python benchmarks/chaos [--iterations N] [--seed S] [--only K]`: the chaos suite."""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time
from pathlib import Path

from leak_guard import LeakGuard, unignore_hangup

from . import resume as resumption
from .iteration import Bounds, Result, run_iteration
from .plan import KINDS, draw
from .report import table


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/chaos", description=__doc__)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seed", type=int, help="default: a random one (printed)")
    parser.add_argument(
        "--faults",
        type=kinds,
        default=KINDS,
        metavar="KIND,...",
        help=f"draw only these kinds (of {', '.join(KINDS)})",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="do not follow a failed batch with experiment-start --resume",
    )
    parser.add_argument("--only", type=int, metavar="K", help="run iteration K alone")
    parser.add_argument(
        "--run-bound",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds a batch may take to end by itself (default 30)",
    )
    parser.add_argument(
        "--exit-bound",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds from a stop to the executor's exit (default 10)",
    )
    return parser.parse_args(argv)


def kinds(text: str) -> tuple[str, ...]:
    chosen = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown fault kind(s) {unknown}; known: {KINDS}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    plans = [draw(rng, index, args.faults) for index in range(args.iterations)]
    if args.only is not None:
        plans = [plans[args.only]]
    bounds = Bounds(run=args.run_bound, exit=args.exit_bound)
    guard = LeakGuard()  # makes this process a subreaper: orphans stay findable
    unignore_hangup()
    resume = not args.no_resume and resumption.supported()
    print(f"chaos: seed {seed} (re-run one: --seed {seed} --only K)", flush=True)
    print(f"failed batches resumed: {'yes' if resume else 'no (no --resume)'}", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="palaestrio-chaos-") as root:
        for plan in plans:
            began = time.monotonic()
            tag = f"chaos-{seed}-{plan.index}"
            result = run_iteration(plan, Path(root), tag, bounds, guard, resume)
            results.append(result)
            took = time.monotonic() - began
            verdict = f"{len(result.violations)} violation(s)" if result.violations else "ok"
            print(
                f"[{plan.index}] {plan.describe()} -> exit {result.outcome.returncode}, "
                f"{took:.1f}s, {verdict}",
                flush=True,
            )
            for violation in result.violations:
                print(f"    {violation.kind}: {violation.detail}", flush=True)
            for note in result.notes:
                print(f"      {note}", flush=True)
    print()
    print(table(results, seed))
    return 1 if any(result.violations for result in results) else 0
