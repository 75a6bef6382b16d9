"""Many jobs, K workers: first-come, the stampede, the joint plan re-planned as forecasts arrive, and its oracle.

Pure: the grid, the jobs and the forecasts in, scores out. Every job draws 1 kW, as in the single-job backtest.
- fcfs: carbon-unaware; in arrival order, each job whole as soon as a worker is free (DVC's queue, SLURM's).
- greedy: each job, when it arrives, takes its own best window by what is expected then (its cheapest chunks if it
  is interruptible); the workers serve the pieces in the order of those windows: the stampede. Late jobs are kept.
- joint: scheduling.joint's plan of every job that has arrived and not started, made again at every arrival and
  every new forecast issue. What has started stays where it is (a started interruptible job re-plans what is left).
  What is expected is the nowcast the single-job rolling policy uses: the forecast known then, corrected by the
  errors seen so far and relaxed to the daily profile beyond its horizon.
- joint-hedged: the joint policy, each whole job held towards its first-come start (known when it arrives: fcfs
  serves in arrival order) by scheduling/hedged.py, which the queue's `--policy joint-hedged` shares. Any other
  start costs, besides its expected grams, HEDGE_WEIGHT x what it would emit with every point raised by the
  forecast's own error band (`ErrorBand`) beyond what the first-come start would with every point lowered by it: a
  job moves only for a saving the forecast's error cannot undo, unless capacity leaves it no better choice. Beside
  the jobs that have arrived it plans the ones it expects, each job of the last day again a day later, held to
  their own first-come starts in the same way (a capacity reserve: a job deferred by a day does not take the worker
  that the next day's first-come start needs). It trades saving for fewer days dirtier than fcfs.
- oracle-capacity: the joint policy knowing the actual intensities (its forecast is the trace itself): what the
  joint plan would save with a perfect forecast. Like every policy it learns of a job when the job arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import FieldError
from ..intensity.series import IntensitySeries
from ..scheduling.hedged import banded, hedge_to
from ..scheduling.joint import QueuedJob, own_best, plan_jobs, serve
from .forecasts import Forecasts, IssuedForecasts
from .grid import Grid
from .jobs import Jobs
from .policies import Knowledge

CAPACITY_POLICIES = ("fcfs", "greedy", "joint", "joint-hedged", "oracle-capacity")
DEFAULT_CAPACITY_POLICIES = ("fcfs", "greedy", "joint", "oracle-capacity")  # joint-hedged on request: it re-plans again
RECUR = 86400.0  # joint-hedged expects the jobs of the last day to arrive again a day later
MIN_ERROR_PAIRS = 12  # per lead, before a forecast's past errors count as its error band there
Runs = list[list[tuple[float, float]]]  # per job, the [start, end) seconds it ran


@dataclass(frozen=True)
class CapacityScore:
    """One policy with `capacity` workers; grams are at 1 kW per job, `fraction_of_oracle` of oracle-capacity's
    saving."""

    policy: str
    jobs: int
    capacity: int
    total_kg: float
    saving_vs_fcfs_pct: float
    fraction_of_oracle: float | None
    deadline_misses: int
    mean_wait_hours: float  # first start - arrival
    max_wait_hours: float
    dirtier_than_fcfs: int  # jobs that emitted more than they did under fcfs
    days: int  # days (UTC, by arrival) scored
    days_not_worse: int  # of them, days whose jobs emitted no more than under fcfs
    replans: int
    largest_gap: float  # the largest relative gap to the LP bound among the plans made (0: all exact)


def check_capacity(capacity: int, policies: Sequence[str]) -> None:
    if not isinstance(capacity, int) or capacity < 1:
        raise FieldError("capacity", f"must be a whole number of workers, at least 1, not {capacity}")
    for policy in policies:
        if policy not in CAPACITY_POLICIES:
            raise FieldError(
                "policy", f"{policy!r} is not a policy with a capacity (known: {', '.join(CAPACITY_POLICIES)})"
            )


def plan_step(grid: Grid, jobs: Jobs) -> float:
    """The coarsest step up to an hour on which every arrival, duration and deadline lies: exact, and smaller
    programmes than the trace's own step where that is finer (15-min traces, half-hour jobs)."""
    points = np.gcd.reduce(np.concatenate([jobs.arrival - jobs.arrival.min(), jobs.duration, jobs.slack, [0]]))
    fits = [k for k in range(1, max(1, int(3600 // grid.step)) + 1) if points % k == 0]
    return grid.step * max(fits)


def queued(grid: Grid, jobs: Jobs) -> list[QueuedJob]:
    """The placed jobs in seconds, at 1 kW."""
    arrival = grid.time(jobs.arrival)
    return [
        QueuedJob(str(name), float(a), float(a + (s + d) * grid.step), float(d * grid.step), 1.0, bool(i))
        for name, a, d, s, i in zip(jobs.ids, arrival, jobs.duration, jobs.slack, jobs.interruptible)
    ]  # fmt: skip


def actual_series(grid: Grid) -> IntensitySeries:
    count = len(grid)
    return IntensitySeries(grid.time(np.arange(count + 1)), grid.values, np.zeros(count, dtype=bool), "trace", "actual")


def fcfs(grid: Grid, jobs: list[QueuedJob], capacity: int) -> Runs:
    order = sorted(range(len(jobs)), key=lambda j: (jobs[j].arrival, j))
    spans = serve([(jobs[j].arrival, j, jobs[j].duration) for j in order], capacity)
    return [spans[j] for j in range(len(jobs))]


class Actuals:
    """Perfect information about intensity, for the oracle: the trace itself from each decision row."""

    def __init__(self, grid: Grid) -> None:
        self.whole = actual_series(grid)
        self.grid = grid

    def series(self, row: int) -> IntensitySeries:
        bounds = self.whole.boundaries[row:]
        return IntensitySeries(bounds, self.whole.values[row:], self.whole.is_forecast[row:], "trace", "actual")


class Expectations:
    """What a policy expects at each decision row: the nowcast, as a series from that row over `horizon` points."""

    def __init__(self, grid: Grid, forecasts: Forecasts, rows: np.ndarray, horizon: int) -> None:
        nowcast = Knowledge(grid, forecasts, horizon).nowcast()
        self.grid, self.horizon, self.expected = grid, horizon, {}
        for block_rows, values in nowcast.blocks(np.unique(rows)):
            for row, row_values in zip(block_rows, values):
                self.expected[int(row)] = _filled(row_values, grid.values[max(int(row) - 1, 0)])
        self.fallback_rows = nowcast.fallback_rows  # decision rows that used the forecast as it is

    def series(self, row: int) -> IntensitySeries:
        values = np.maximum(self.expected[row][: len(self.grid) - row], 0.0)  # a noisy forecast may dip below 0
        bounds = self.grid.time(row + np.arange(len(values) + 1))
        return IntensitySeries(bounds, values, np.ones(len(values), dtype=bool), "nowcast", "expected")


def _filled(values: np.ndarray, last_actual: float) -> np.ndarray:
    """Unknown points (NaN) take the value expected before them, the last actual at the start."""
    known = ~np.isnan(values)
    index = np.where(known, np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, values[np.maximum(index, 0)], last_actual)


def greedy(grid: Grid, jobs: list[QueuedJob], capacity: int, expect: Expectations) -> Runs:
    wanted = []
    for j, job in enumerate(jobs):
        row = int(round(grid.index(job.arrival)))
        wanted += [(c.start, j, c.duration) for c in own_best(job, expect.series(row), job.arrival).chunks]
    spans = serve(sorted(wanted), capacity)
    return [spans[j] for j in range(len(jobs))]


def decision_rows(grid: Grid, jobs: list[QueuedJob], forecasts: Forecasts | None) -> np.ndarray:
    """Every arrival, and every new forecast issue while some job is waiting."""
    arrivals = np.round(grid.index(np.array([job.arrival for job in jobs]))).astype(np.int64)
    rows = set(arrivals.tolist())
    if isinstance(forecasts, IssuedForecasts):
        issued = np.unique(np.ceil(grid.index(forecasts.issues) - 1e-9).astype(np.int64))
        last = int(np.ceil(grid.index(max(job.deadline for job in jobs)) - 1e-9))
        rows |= set(issued[(issued > arrivals.min()) & (issued < min(last, len(grid)))].tolist())
    return np.array(sorted(rows), dtype=np.int64)


def joint(
    grid: Grid, jobs: list[QueuedJob], capacity: int, expect: "Expectations | Actuals", rows: np.ndarray,
    step: float, hedge: "HedgeToFirstCome | None" = None,
):
    """The rolling joint plan, hedged towards first-come if asked: (runs, re-plans, the largest gap to the bound,
    re-plans that had to let deadlines go)."""
    planned: Runs = [[] for _ in jobs]
    largest_gap, relaxed = 0.0, 0
    for row in rows:
        now = float(grid.time(row))
        pending, pinned = _pending(jobs, planned, now)
        if not any(j not in pinned for j, _ in pending):
            continue
        series = expect.series(int(row))
        expected = hedge.recurring(jobs, pending, now, series.end) if hedge is not None else []
        hedged = hedge.hedges(pending, pinned, series, now, int(row), expected) if hedge is not None else {}
        plan = _hedged_plan(pending, expected, series, capacity, now, step, hedged)
        if plan is None:  # the arrivals do not fit beside what runs: plan them late rather than not at all
            relaxed += 1
            loose = [job if j in pinned else _until(job, series.end) for j, job in pending]
            plan = plan_jobs(loose, series, capacity, now, step=step)
        largest_gap = max(largest_gap, plan.gap)
        for (j, _), placed in zip(pending, plan.slots):
            if j not in pinned:
                done = [(start, min(end, now)) for start, end in planned[j] if start < now - 1e-6]
                planned[j] = done + [(chunk.start, chunk.end) for chunk in placed.chunks]
    return planned, len(rows), largest_gap, relaxed


def _hedged_plan(pending, expected: list, series, capacity, now, step, hedged: dict):
    """The plan of the pending jobs (beside the jobs `expected` to arrive, if they fit), hedged if asked; None when
    it cannot meet every deadline."""
    queued = [job for _, job in pending]
    for reserve in ([job for job, _ in expected], []) if expected else ([],):
        kept = {**hedged, "hedges": hedged["hedges"][: len(queued) + len(reserve)]} if hedged else {}
        try:
            return plan_jobs(queued + reserve, series, capacity, now, step=step, **kept)
        except FieldError:
            continue
    return None


def _pending(jobs: list[QueuedJob], planned: Runs, now: float) -> tuple[list[tuple[int, QueuedJob]], set[int]]:
    """The jobs to plan at `now`: arrived and not started (or interruptible with work left, which is what they
    bring), and, pinned where they are, the whole jobs still running."""
    pending, pinned = [], set()
    for j, job in enumerate(jobs):
        runs = planned[j]
        if job.arrival > now + 1e-6:
            continue
        if not job.interruptible and runs and runs[0][0] < now - 1e-6:
            if runs[0][1] > now + 1e-6:
                pending.append((j, QueuedJob(job.name, now, runs[0][1], runs[0][1] - now, job.power_kw)))
                pinned.add(j)
            continue
        left = job.duration - sum(min(end, now) - start for start, end in runs if start < now)
        if left > 1e-6:
            pending.append((j, QueuedJob(job.name, job.arrival, job.deadline, left, job.power_kw, job.interruptible)))
    return pending, pinned


def _until(job: QueuedJob, end: float) -> QueuedJob:
    return QueuedJob(job.name, job.arrival, max(job.deadline, end), job.duration, job.power_kw, job.interruptible)


class ErrorBand:
    """The forecast's own error band at each decision row: per lead, the root mean square of its errors over the
    (issue row, lead) pairs whose target has ended by then. A lead with fewer than MIN_ERROR_PAIRS takes the
    largest band of the shorter leads that have them (errors grow with lead); with none at all it is infinite."""

    def __init__(self, grid: Grid, forecasts: Forecasts, rows: np.ndarray, horizon: int) -> None:
        last = int(rows.max()) if len(rows) else 0
        issued = np.arange(last)
        targets = issued[:, None] + np.arange(horizon)
        actual = np.where(targets < len(grid), grid.values[np.minimum(targets, len(grid) - 1)], np.nan)
        squared = (actual - forecasts.forecast(issued, horizon)) ** 2 if last else np.empty((0, horizon))
        present = ~np.isnan(squared)
        sums = np.cumsum(np.where(present, squared, 0.0), axis=0)
        counts = np.cumsum(present, axis=0)
        self.band: dict[int, np.ndarray] = {}
        for row in np.unique(rows):
            through = int(row) - 1 - np.arange(horizon)  # the last issue row whose target at that lead has ended
            ok = through >= 0
            total = np.where(ok, sums[np.maximum(through, 0), np.arange(horizon)], 0.0) if last else np.zeros(horizon)
            count = np.where(ok, counts[np.maximum(through, 0), np.arange(horizon)], 0) if last else np.zeros(horizon)
            rms = np.where(count >= MIN_ERROR_PAIRS, np.sqrt(total / np.maximum(count, 1)), np.nan)
            self.band[int(row)] = np.fmax.accumulate(np.where(np.isnan(rms), -np.inf, rms))
            self.band[int(row)][np.isinf(self.band[int(row)])] = np.inf

    def at(self, row: int, points: int) -> np.ndarray:
        """The band for the next `points` points from `row` (the last lead's band beyond the horizon)."""
        band = self.band[row]
        return band[np.minimum(np.arange(points), len(band) - 1)]


class HedgeToFirstCome:
    """What joint-hedged needs at a re-plan: each whole job's first-come start and its ceiling, what it would emit
    there at best (the actuals for what has passed, the expected series lowered by the error band for the rest),
    and the expected series raised by the band: a move is sure when its worst case beats the first-come best case.

    Beside the jobs that have arrived it plans those it expects (`recurring`), each held to its own first-come
    start: a capacity reserve, so that a job deferred by a day does not take the worker the next day's first-come
    start needs (which would make that day dirtier than fcfs). Only the arrived jobs' slots are kept."""

    def __init__(self, grid: Grid, first_come: Runs, band: ErrorBand, capacity: int) -> None:
        self.actual, self.first_come, self.error, self.capacity = actual_series(grid), first_come, band, capacity

    def recurring(self, jobs: list[QueuedJob], pending, now: float, until: float) -> list[tuple[QueuedJob, float]]:
        """The jobs expected to arrive while the pending ones may still run, each with its first-come start: every
        job that arrived in the last RECUR seconds, again RECUR later (a daily sweep), whole, served first-come."""
        horizon = min(until, max(job.deadline for _, job in pending))
        copies = [
            QueuedJob(f"expected {job.name}", job.arrival + RECUR, min(job.deadline + RECUR, until), job.duration,
                      job.power_kw)
            for job in jobs
            if now - RECUR < job.arrival <= now + 1e-6 and job.arrival + RECUR < horizon
        ]  # fmt: skip
        starts = serve(sorted((copy.arrival, k, copy.duration) for k, copy in enumerate(copies)), self.capacity)
        return [(copy, starts[k][0][0]) for k, copy in enumerate(copies) if starts[k][0][1] <= copy.deadline]

    def hedges(self, pending, pinned: set[int], series: IntensitySeries, now: float, row: int,
               expected: list[tuple[QueuedJob, float]]) -> dict:  # fmt: skip
        """plan_jobs' keyword arguments for the pending jobs, then the expected ones."""
        best, pessimistic = banded(series, self.error.at(row, len(series.values)))
        hedges = [None if j in pinned or job.interruptible
                  else hedge_to(self.first_come[j][0][0], job, best, now, self.actual)
                  for j, job in pending]  # fmt: skip
        hedges += [hedge_to(start, job, best, now, self.actual) for job, start in expected]
        return {"hedges": hedges, "pessimistic": pessimistic}
