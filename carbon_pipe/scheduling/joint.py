"""Many jobs, few workers: the start (or chunks) of every job, chosen together to emit least. Pure: no I/O, no clock.

Times are epoch seconds, like planner.py. A job may run from its arrival (or `now`, if later) and must end by its
deadline; at most `workers` jobs run at any moment. `plan_jobs` solves this exactly on a time grid as an integer
programme (joint_model.py); two carbon-unaware or selfish plans sit beside it as what it is compared with:
`first_come_plan` (every job as soon as a worker is free, in arrival order: DVC's queue, a plain SLURM queue) and
`own_best_window_plan` (every job takes its own best window, then the workers serve them in that order: the
stampede). Those two may finish a job after its deadline; they say so in `late`, they never hide it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import FieldError
from ..intensity.series import IntensitySeries
from ..timeutil import format_duration, iso
from .planner import Chunk, interruptible_plan, lowest_mean_start

# The grid a default plan uses: the series' own step, coarsened to at least this (a finer plan buys little carbon
# and makes the programme larger).
MIN_DEFAULT_STEP = 900.0


@dataclass(frozen=True)
class QueuedJob:
    name: str
    arrival: float  # earliest start
    deadline: float  # latest end
    duration: float  # seconds of running
    power_kw: float  # expected mean power while running
    interruptible: bool = False
    min_chunk: float = 0.0  # an interruptible job's shortest chunk, seconds (the last may be cut to the duration)


@dataclass(frozen=True)
class Hedge:
    """Hold a job that runs whole towards `reference` (its first-come start, say): every other start costs, on top
    of what it is expected to emit, `weight` x the grams by which it would emit more than `ceiling_g` (what
    `reference` would emit, at best) on the pessimistic series handed to `plan_jobs` (the forecast plus its error
    band). A job moves for a saving its forecast's error cannot undo, or where capacity leaves it no better choice."""

    reference: float
    ceiling_g: float
    weight: float = 1.0  # penalty grams per gram of that excess: large, a move must clear the band; 1, half of it


@dataclass(frozen=True)
class JobSlot:
    """One job's place in a plan: where it runs and what it is expected to emit there."""

    name: str
    chunks: tuple[Chunk, ...]
    expected_g: float  # power_kw x the integral of intensity over the chunks

    @property
    def start(self) -> float:
        return self.chunks[0].start

    @property
    def end(self) -> float:
        return self.chunks[-1].end


@dataclass(frozen=True)
class JointPlan:
    slots: tuple[JobSlot, ...]  # in the order of the jobs given
    method: str  # "milp" (exact on the grid), "heuristic" (within `gap` of the bound), or a baseline's name
    total_g: float
    lower_bound_g: float  # no plan on this grid emits less; == total_g when exact
    step: float  # grid resolution in seconds (0 for the baselines, which need none)
    late: tuple[str, ...] = ()  # jobs that end after their deadline (only the baselines ever have any)

    @property
    def gap(self) -> float:
        """How far the plan may be from the best one on its grid, as a fraction of its total."""
        return 0.0 if self.total_g <= 0 else max(0.0, (self.total_g - self.lower_bound_g) / self.total_g)


def plan_jobs(
    jobs: Sequence[QueuedJob], series: IntensitySeries, workers: int, now: float, *, step: float | None = None,
    hedges: Sequence[Hedge | None] | None = None, pessimistic: IntensitySeries | None = None,
) -> JointPlan:
    """The plan that emits least in expectation with at most `workers` jobs running at once (see joint_model).

    `hedges` (per job, None for none; interruptible jobs ignore theirs) weigh what a move risks, judged on
    `pessimistic`, a series at least as long as `series` from `now`. The plan's totals and bound stay the expected
    grams; with hedges the plan is the best of the penalised programme, and `gap` is its distance from that one.
    """
    from .joint_model import solve

    check_jobs(jobs, series, workers, now)
    step = default_step(series) if step is None else step
    if not step > 0:
        raise FieldError("step", f"must be positive, not {step:g}")
    if hedges is not None and (len(hedges) != len(jobs) or pessimistic is None):
        raise ValueError("hedges need one entry per job and a pessimistic series")
    solution = solve(jobs, series, workers, now, step, hedges, pessimistic)
    slots = tuple(slot(job, series, spans) for job, spans in zip(jobs, solution.spans))
    total = sum(slot.expected_g for slot in slots)
    bound = solution.bound_g if hedges is None else total - (solution.objective_g - solution.bound_g)
    bound = total if solution.exact else min(total, bound)
    return JointPlan(slots, "milp" if solution.exact else "heuristic", total, bound, step)


def first_come_plan(jobs: Sequence[QueuedJob], series: IntensitySeries, workers: int, now: float) -> JointPlan:
    """Carbon-unaware: in arrival order (the given order among equals), each job whole, as soon as a worker is free."""
    check_jobs(jobs, series, workers, now, capacity=False)
    order = sorted(range(len(jobs)), key=lambda j: (_earliest(jobs[j], now), j))
    wanted = [(_earliest(jobs[j], now), j, jobs[j].duration) for j in order]
    return _baseline("first-come", jobs, series, serve(wanted, workers))


def own_best_window_plan(jobs: Sequence[QueuedJob], series: IntensitySeries, workers: int, now: float) -> JointPlan:
    """Each job's single-job plan (its chunks, if interruptible), then `workers` serve the pieces in the order of
    their planned starts, each as soon as a worker is free and its previous piece has ended: the stampede."""
    check_jobs(jobs, series, workers, now, capacity=False)
    wanted = []
    for j, job in enumerate(jobs):
        for chunk in own_best(job, series, now).chunks:
            wanted.append((chunk.start, j, chunk.duration))
    return _baseline("own-best-window", jobs, series, serve(sorted(wanted), workers))


def default_step(series: IntensitySeries) -> float:
    """The series' step (the common divisor of its points' lengths), coarsened by a whole factor to MIN_DEFAULT_STEP."""
    lengths = np.round(np.diff(series.boundaries)).astype(np.int64)
    base = float(max(np.gcd.reduce(lengths), 1))
    return base * math.ceil(MIN_DEFAULT_STEP / base - 1e-9)


def check_jobs(
    jobs: Sequence[QueuedJob], series: IntensitySeries, workers: int, now: float, capacity: bool = True
) -> None:
    """One line naming the first job that cannot be planned at all; capacity alone is the solver's to judge."""
    if not isinstance(workers, int) or workers < 1:
        raise FieldError("workers", f"must be a whole number of at least 1, not {workers}")
    if not jobs:
        raise FieldError("jobs", "nothing to plan")
    if not series.covers(now, now):
        raise FieldError(
            "now", f"{iso(now)} is outside the intensity series ({iso(series.start)} to {iso(series.end)})"
        )
    names = set()
    for job in jobs:
        field = f"job {job.name}"
        if job.name in names:
            raise FieldError(field, "appears twice")
        names.add(job.name)
        if not (job.duration > 0 and math.isfinite(job.duration)):
            raise FieldError(field, f"duration must be positive, not {job.duration}")
        if not (job.power_kw >= 0 and math.isfinite(job.power_kw)):
            raise FieldError(field, f"power must be a non-negative number of kW, not {job.power_kw}")
        if job.deadline < job.arrival + job.duration:
            raise FieldError(field, f"its deadline {iso(job.deadline)} is before its arrival plus its duration")
        if job.deadline < now + job.duration:
            raise FieldError(field, f"its deadline {iso(job.deadline)} leaves no time to run it from {iso(now)}")
        if _earliest(job, now) + job.duration > series.end:
            raise FieldError(
                field, f"the intensity series ends {iso(series.end)}, before a {format_duration(job.duration)} run "
                f"from {iso(_earliest(job, now))} could finish",
            )  # fmt: skip


def _earliest(job: QueuedJob, now: float) -> float:
    return max(job.arrival, now)


def own_best(job: QueuedJob, series: IntensitySeries, now: float):
    """The job's single-job plan from `now`: its best window, or its cheapest chunks if it is interruptible."""
    earliest, latest_end = _earliest(job, now), min(job.deadline, series.end)
    if job.interruptible:
        return interruptible_plan(series, earliest, latest_end, job.duration, job.min_chunk)
    return lowest_mean_start(series, earliest, latest_end - job.duration, job.duration)


def serve(wanted: list[tuple[float, int, float]], workers: int) -> dict[int, list[tuple[float, float]]]:
    """Pieces (wanted start, job, length) in order, each on the worker free first, not before the job's last piece."""
    free = [0.0] * workers
    spans: dict[int, list[tuple[float, float]]] = {}
    for wanted_start, j, length in wanted:
        worker_free = heapq.heappop(free)
        after = spans[j][-1][1] if j in spans else wanted_start
        start = max(wanted_start, worker_free, after)
        spans.setdefault(j, []).append((start, start + length))
        heapq.heappush(free, start + length)
    return spans


def _baseline(method: str, jobs: Sequence[QueuedJob], series: IntensitySeries, spans: dict) -> JointPlan:
    """The plan of a baseline; a piece running past the series is costed at the series' last value, not dropped."""
    slots = tuple(slot(job, series, spans[j]) for j, job in enumerate(jobs))
    late = tuple(job.name for job, slot in zip(jobs, slots) if slot.end > job.deadline + 1e-6)
    total = sum(slot.expected_g for slot in slots)
    return JointPlan(slots, method, total, total, 0.0, late)


def slot(job: QueuedJob, series: IntensitySeries, spans: list[tuple[float, float]]) -> JobSlot:
    """Touching spans merged into chunks, each costed exactly on the series (held at its last value past its end)."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1e-6:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    chunks = tuple(Chunk(start, end, _mean(series, start, end)) for start, end in merged)
    grams = job.power_kw * sum(chunk.mean_intensity * chunk.duration for chunk in chunks) / 3600.0
    return JobSlot(job.name, chunks, grams)


def _mean(series: IntensitySeries, start: float, end: float) -> float:
    inside = min(end, series.end)
    held = series.integral(start, inside)[0] if inside > start else 0.0
    past = max(0.0, end - max(start, series.end)) * float(series.values[-1])
    return (held + past) / (end - start)
