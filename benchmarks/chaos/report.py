"""The suite's table: faults per kind, iterations, violations per kind, exit times."""

from __future__ import annotations

from collections import Counter

from .iteration import Result
from .plan import KINDS


def table(results: list[Result], seed: int) -> str:
    injected: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    skipped: dict[str, Counter[str]] = {}
    hit: Counter[str] = Counter()
    for result in results:
        kinds = {fault.kind for fault in result.plan.faults}
        for kind in kinds:
            if kind in result.skipped:
                skipped.setdefault(kind, Counter())[result.skipped[kind]] += 1
            elif kind in result.struck:
                injected[kind] += 1
            else:
                missed[kind] += 1
            if result.violations:
                hit[kind] += 1
    lines = [f"chaos: seed {seed}, {len(results)} iterations", ""]
    lines.append(
        f"{'fault':<16}{'injected':>9}{'missed':>8}{'skipped':>9}{'iterations w/ violations':>26}"
    )
    for kind in KINDS:
        count = sum(skipped.get(kind, Counter()).values())
        lines.append(f"{kind:<16}{injected[kind]:>9}{missed[kind]:>8}{count:>9}{hit[kind]:>26}")
    lines.append("(missed: the executor ended before the fault's moment came)")
    for kind, reasons in skipped.items():
        for reason in reasons:
            lines.append(f"  skipped {kind}: {reason}")
    violations = Counter(v.kind for result in results for v in result.violations)
    lines += ["", f"{'invariant violation':<24}{'count':>7}"]
    for kind, count in sorted(violations.items()):
        lines.append(f"{kind:<24}{count:>7}")
    lines.append(f"{'total':<24}{sum(violations.values()):>7}")
    exits = [r.outcome.exit_seconds for r in results if r.outcome.exit_seconds is not None]
    worst = f"{max(exits):.2f} s over {len(exits)} stops" if exits else "-"
    lines += ["", f"worst exit time after a stop: {worst}"]
    return "\n".join(lines)
