"""The plan as a PNG: the intensity forecast with each entry as a bar in its worker's lane (a Gantt over the
forecast), the queue's joint plan beside the carbon-agnostic first-come plan."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..intensity.series import IntensitySeries
from ..report.charts import save_png
from ..scheduling.joint import JointPlan
from .planning import lanes


def _date(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _panel(axis, series: IntensitySeries, plan: JointPlan, title: str, workers: int, span: tuple[float, float]) -> None:
    import matplotlib.dates as mdates

    begin, end = span
    keep = (series.boundaries[1:] > begin - 3600) & (series.boundaries[:-1] < end + 3600)
    times = [_date(moment) for moment in np.append(series.boundaries[:-1][keep], series.boundaries[1:][keep][-1])]
    values = np.append(series.values[keep], series.values[keep][-1])
    curve = axis.twinx()
    curve.step(times, values, where="post", color="black", linewidth=1.4)
    curve.set_ylabel("gCO2/kWh", color="0.35")
    lane_of = lanes(plan)
    colours = {slot.name: f"C{index % 10}" for index, slot in enumerate(sorted(plan.slots, key=lambda s: s.name))}
    for slot in plan.slots:
        for chunk in slot.chunks:
            axis.barh(lane_of[slot.name], (chunk.end - chunk.start) / 86400, left=mdates.date2num(_date(chunk.start)),
                      height=0.7, color=colours[slot.name], alpha=0.6)
        axis.text(mdates.date2num(_date(slot.start)), lane_of[slot.name], f" {slot.name}", va="center", fontsize=7)
    axis.set_yticks(range(max(workers, max(lane_of.values(), default=0) + 1)))
    axis.set_ylabel("worker")
    axis.set_title(f"{title}: {plan.total_g:.2f} g expected", fontsize=9)
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%d %H:%M", tz=timezone.utc))


def write_gantt(
    path: str | Path, series: IntensitySeries, joint: JointPlan, first_come: JointPlan, workers: int
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 1, sharex=True)
    slots = joint.slots + first_come.slots
    span = (min(slot.start for slot in slots), max(slot.end for slot in slots))  # one forecast window for both
    _panel(axes[0], series, joint, f"carbon-aware joint plan ({joint.method})", workers, span)
    _panel(axes[1], series, first_come, "carbon-agnostic first-come", workers, span)
    axes[1].set_xlabel("UTC")
    figure.suptitle(f"{len(joint.slots)} entries on {workers} worker(s), {series.source} {series.region}", fontsize=10)
    save_png(figure, path)
