"""The joint plan hedged towards first-come: each whole job is held at a reference start (its first-come start) and
leaves it only for a saving that the forecast's own error band cannot undo, or where capacity leaves no better
choice. Pure: no I/O, no clock. Shared by the queue (`--policy joint-hedged`) and the capacity backtest.

A move is sure when what the job would emit elsewhere with every point raised by the band beats what it would emit
at its reference with every point lowered by it. Where the band is unknown (infinite), a point counts twice the
highest expected value: no move there is sure.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..intensity.series import IntensitySeries
from .joint import Hedge, JointPlan, QueuedJob, first_come_plan, plan_jobs

HEDGE_WEIGHT = 1000.0  # a move must clear the band: risk weighs 1000 g a gram; finite, so there is always a plan


def banded(series: IntensitySeries, band: np.ndarray) -> tuple[IntensitySeries, IntensitySeries]:
    """(optimistic, pessimistic): the series with every point lowered (not below 0) and raised by its band."""
    best = np.maximum(series.values - band, 0.0)
    worst = np.where(np.isfinite(band), series.values + band, 2 * series.values.max())
    return (
        IntensitySeries(series.boundaries, best, series.is_forecast, series.source, "optimistic"),
        IntensitySeries(series.boundaries, worst, series.is_forecast, series.source, "pessimistic"),
    )


def hedge_to(
    reference: float, job: QueuedJob, optimistic: IntensitySeries, now: float, past: Optional[IntensitySeries] = None
) -> Hedge:
    """Hold `job` at `reference`: its ceiling is what it would emit there at best (`past`, the actual intensities,
    for the part of the reference run already behind `now`)."""
    end = reference + job.duration
    behind = past.integral(reference, min(now, end))[0] if past is not None and reference < now else 0.0
    ahead = optimistic.integral(max(reference, now), end)[0] if end > now else 0.0
    return Hedge(reference, job.power_kw * (behind + ahead) / 3600.0, HEDGE_WEIGHT)


def hedged_plan(
    jobs: Sequence[QueuedJob], series: IntensitySeries, band: np.ndarray, workers: int, now: float, *,
    references: Sequence[Optional[float]], step: Optional[float] = None, past: Optional[IntensitySeries] = None,
) -> JointPlan:
    """The joint plan with each whole job hedged towards its reference start (None: not hedged, e.g. a job running
    already); `band` is the forecast's error per point of `series`."""
    optimistic, pessimistic = banded(series, band)
    hedges = [
        None if reference is None or job.interruptible else hedge_to(reference, job, optimistic, now, past)
        for job, reference in zip(jobs, references)
    ]
    return plan_jobs(jobs, series, workers, now, step=step, hedges=hedges, pessimistic=pessimistic)


def hedged_to_first_come(
    jobs: Sequence[QueuedJob], series: IntensitySeries, band: np.ndarray, workers: int, now: float,
    held: Sequence[bool], step: Optional[float] = None,
) -> JointPlan:
    """joint-hedged for jobs that all arrive by `now`: the jobs `held` are hedged towards their first-come starts
    (first-come among all `jobs`, in the given order among equals)."""
    first_come = first_come_plan(jobs, series, workers, now)
    references = [slot.start if hold else None for slot, hold in zip(first_come.slots, held)]
    return hedged_plan(jobs, series, band, workers, now, references=references, step=step)
