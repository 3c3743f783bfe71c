"""`runs plot`: a run's series (`series.RunSeries`) as one PNG of four plots, the same
the web page draws: objective and reward per episode per agent (sums over the
episode's steps), episode length per worker, steps/s over time. matplotlib (the `plot`
extra) with its Agg canvas: no display, no pyplot state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .extras import require
from .series import RunSeries, Throughput

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 8.0, 100
"""The PNG is 1200 x 800 pixels."""
MAX_LEGEND = 12


def plot_series(series: RunSeries, path: Path) -> None:
    """Writes the four plots of `series` to `path` (PNG)."""
    figure_module = require("matplotlib.figure", "plot", "runs plot")
    require("matplotlib.backends.backend_agg", "plot", "runs plot")
    figure = figure_module.Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    objective, reward, lengths, throughput = figure.subplots(2, 2).flat
    several = len(series.phases) > 1
    for phase in series.phases:
        suffix = f" ({phase.name})" if several else ""
        for agent in phase.agents:
            label = f"{agent.agent} w{agent.worker}{suffix}"
            objective.plot(agent.episode, agent.objective, marker=".", label=label)
            reward.plot(agent.episode, agent.reward, marker=".", label=label)
        for worker in phase.episode_lengths:
            lengths.plot(
                worker.episode, worker.steps, marker=".", label=f"w{worker.worker}{suffix}"
            )
        if phase.throughput.seconds:
            edges, rates = _stairs(phase.throughput, series.bucket_seconds)
            throughput.stairs(rates, edges, label=phase.name)
    _label(objective, "objective per episode (sum)", "episode", "objective")
    _label(reward, "reward per episode (sum)", "episode", "reward")
    _label(lengths, "episode length", "episode", "steps")
    _label(throughput, "steps/s", "seconds since the run started", "steps/s")
    figure.suptitle(
        f"{series.run_uid}  ({series.instance_uid[:8]}, {series.status})", fontsize="medium"
    )
    figure.savefig(path, format="png")


def _stairs(throughput: Throughput, width: float) -> tuple[list[float], list[float]]:
    """Bucket edges and rates from the phase's first bucket to its last; a bucket without
    steps (absent from the series) is 0 steps/s."""
    rates = dict(zip(throughput.seconds, throughput.steps_per_second, strict=True))
    first, last = round(throughput.seconds[0] / width), round(throughput.seconds[-1] / width)
    starts = [index * width for index in range(first, last + 1)]
    values = [rates.get(start, 0.0) for start in starts]
    return [*starts, starts[-1] + width], values


def _label(axes: Axes, title: str, x: str, y: str) -> None:
    axes.set_title(title, fontsize="medium")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.grid(alpha=0.3)
    if x == "episode":
        ticker = require("matplotlib.ticker", "plot", "runs plot")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    handles, _labels = axes.get_legend_handles_labels()
    if not handles:
        axes.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=axes.transAxes)
    elif len(handles) <= MAX_LEGEND:
        axes.legend(fontsize="small")
