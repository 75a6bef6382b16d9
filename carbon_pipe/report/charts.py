"""The report's PNG charts: matplotlib's Agg canvas (no display, no pyplot state) at a fixed size and DPI.

PNGs carry no software or time stamp, so the same data draws the same bytes; measured numbers (time, energy)
still differ from run to run, and so do their charts.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Optional, Sequence

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..artifacts import atomic_path
from ..intensity.series import IntensitySeries
from .plot_data import Curve, Span

DPI = 100
COLORS = {"grid": "#3b6ea8", "baseline": "#d9822b", "optimized": "#2e9b57", "allowed": "#e8e8e8"}


def _figure(width: float, height: float, panels: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, panels, i + 1) for i in range(panels)]


def save_png(figure: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _dates(seconds) -> np.ndarray:
    return mdates.date2num([datetime.fromtimestamp(float(t), tz=timezone.utc) for t in np.atleast_1d(seconds)])


def draw_timeline(
    path: str | Path,
    series: IntensitySeries,
    allowed_start: Span,
    baseline: tuple[str, Span],
    optimized: tuple[str, Sequence[Span]],
    title: str,
) -> None:
    """Grid intensity as steps; shaded: where the start was allowed, the baseline's run, the optimized window(s).

    A run of a minute is a sliver on a two-day axis, so each span also gets a line at its start.
    """
    figure, (ax,) = _figure(10, 4.6)
    (allowed_from, allowed_to) = _dates(allowed_start)
    ax.axvspan(
        allowed_from, allowed_to, color=COLORS["allowed"], zorder=0, label="allowed start (submission + max_wait)"
    )
    ax.stairs(
        series.values,
        _dates(series.boundaries),
        baseline=None,
        color=COLORS["grid"],
        linewidth=1.8,
        label="grid intensity",
    )
    top = float(series.values.max()) * 1.12
    marks = ((baseline[0], [baseline[1]], COLORS["baseline"]), (optimized[0], optimized[1], COLORS["optimized"]))
    for label, spans, color in marks:
        for i, (start, end) in enumerate(spans):
            left, right = _dates((start, end))
            ax.axvspan(left, right, color=color, alpha=0.35, linewidth=0)
            ax.axvline(left, color=color, linewidth=2, label=label if i == 0 else None)
        ax.annotate(label.split(":")[0], (_dates(spans[0][0])[0], top), xytext=(4, -12), textcoords="offset points",
                    color=color, fontsize="small", fontweight="bold")
    # A margin on the left, so a run starting at submission is not hidden under the axis.
    start, end = _dates((series.start, series.end))
    ax.set_xlim(start - 0.01 * (end - start), end)
    ax.set_ylim(0, top)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M\n%d %b", tz=timezone.utc))
    ax.set_xlabel("time on the pipeline clock (UTC)")
    ax.set_ylabel("gCO2/kWh")
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    save_png(figure, path)


def draw_epochs(path: str | Path, frame: pd.DataFrame, runs: Sequence[str]) -> None:
    """Loss (train solid, test dashed) and test accuracy per epoch, one colour per run."""
    figure, (loss_ax, accuracy_ax) = _figure(10, 3.6, panels=2)
    for run in runs:
        color = COLORS[run]
        loss_ax.plot(frame["epoch"], frame[f"{run}_train_loss"], "o-", color=color, label=f"{run} train")
        loss_ax.plot(frame["epoch"], frame[f"{run}_test_loss"], "s--", color=color, label=f"{run} test")
        accuracy_ax.plot(frame["epoch"], frame[f"{run}_test_accuracy"], "o-", color=color, label=run)
    for ax, title, ylabel in (
        (loss_ax, "Loss per epoch", "cross-entropy"),
        (accuracy_ax, "Test accuracy per epoch", "%"),
    ):
        ax.set_title(title, loc="left")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xticks(frame["epoch"].tolist())
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_png(figure, path)


def draw_cumulative(path: str | Path, curves: Mapping[str, Optional[Curve]], labels: Mapping[str, str]) -> None:
    """Cumulative grams of CO2 against run time, each curve ending at its run's total."""
    figure, (ax,) = _figure(8, 4)
    for run, curve in curves.items():
        if curve is None:
            ax.plot([], [], color=COLORS[run], label=f"{labels[run]}: energy unknown")
            continue
        seconds, grams = curve
        ax.plot(seconds, grams, ".-", color=COLORS[run], markersize=4, label=labels[run])
        ax.annotate(f"{grams[-1]:.4g} g", (seconds[-1], grams[-1]), textcoords="offset points", xytext=(4, 2),
                    color=COLORS[run], fontsize="small")
    ax.set_xlabel("run time (s, pauses excluded)")
    ax.set_ylabel("cumulative gCO2")
    ax.set_title("Cumulative emissions", loc="left")
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.08)  # room for the totals' labels
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    save_png(figure, path)
