"""The scheduling policies: where each job runs, decided from what the policy may know, scored by the actuals.

Information: a policy deciding at point i knows the actuals of points that have ended (< i) and the latest
forecast issued at or before the time of point i. Only the oracles read the actuals beyond that.
Work goes a block of jobs (or rows) at a time, so memory stays bounded whatever the number of jobs or points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import FieldError
from .choices import best_windows, cheapest_points, chunks_of
from .forecasts import Forecasts, beliefs
from .grid import Grid
from .jobs import Jobs
from .nowcast import Nowcast

POLICIES = (
    "now",
    "threshold",
    "forecast-window",
    "rolling",
    "forecast-chunks",
    "interruptible",
    "oracle",
    "oracle-interruptible",
)
INTERRUPTIBLE = ("forecast-chunks", "interruptible", "oracle-interruptible")
NOWCAST = ("rolling", "interruptible")
ORACLES = ("oracle", "oracle-interruptible")
JOB_CELLS = 1 << 21  # jobs x points in one block of jobs


@dataclass(frozen=True)
class Outcome:
    """Where the jobs ran: chunks (job, start point, length) in job then time order, and each job's cost.

    A job's cost is the sum of the intensities of the points it ran (g/kWh x points), read from the trace's prefix
    sums chunk by chunk, the same way for every policy and the baseline.
    """

    job: np.ndarray
    start: np.ndarray
    length: np.ndarray
    cost: np.ndarray

    @classmethod
    def of_chunks(
        cls, job: np.ndarray, start: np.ndarray, length: np.ndarray, prefix: np.ndarray, jobs: int
    ) -> "Outcome":
        cost = np.bincount(job, weights=prefix[start + length] - prefix[start], minlength=jobs)
        return cls(job, start, length, cost)

    @classmethod
    def of_starts(cls, starts: np.ndarray, jobs: Jobs, prefix: np.ndarray) -> "Outcome":
        return cls.of_chunks(np.arange(len(jobs)), starts.astype(np.int64), jobs.duration, prefix, len(jobs))

    def first_start(self) -> np.ndarray:
        firsts = np.ones(len(self.job), dtype=bool)
        firsts[1:] = self.job[1:] != self.job[:-1]
        return self.start[firsts]

    def finish(self) -> np.ndarray:
        lasts = np.ones(len(self.job), dtype=bool)
        lasts[:-1] = self.job[1:] != self.job[:-1]
        return (self.start + self.length)[lasts]


class Knowledge:
    """What the policies may know with one set of forecasts, worked out in blocks as they ask for it."""

    def __init__(self, grid: Grid, forecasts: Forecasts, horizon: int) -> None:
        self.grid, self.forecasts, self.horizon = grid, forecasts, horizon
        self.fallback_rows = 0  # decision rows where the nowcast lacked history and used the forecast as it is

    def believed(self, rows: np.ndarray, horizon: Optional[int] = None) -> np.ndarray:
        return beliefs(self.grid, self.forecasts, rows, self.horizon if horizon is None else horizon)

    def nowcast(self) -> Nowcast:
        return Nowcast(self.grid.values, self.believed, self.grid.step, self.horizon)


def outcomes(
    policies: list[str], jobs: Jobs, knowledge: Knowledge, threshold: Optional[float], min_chunk: int
) -> dict[str, Outcome]:
    """Each policy's outcome; the nowcast policies share one pass over the rows."""
    prefix = knowledge.grid.cumulative()
    found = {
        policy: single_policy(policy, jobs, knowledge, threshold, min_chunk, prefix)
        for policy in policies
        if policy not in NOWCAST
    }
    wanted = [policy for policy in NOWCAST if policy in policies]
    if wanted:
        found.update(_nowcast_policies(wanted, jobs, knowledge, min_chunk, prefix))
    return {policy: found[policy] for policy in policies}


def single_policy(
    policy: str, jobs: Jobs, knowledge: Knowledge, threshold: Optional[float], min_chunk: int, prefix: np.ndarray
) -> Outcome:
    """A policy that needs no nowcast, for every job."""
    grid = knowledge.grid
    if policy == "now":
        return Outcome.of_starts(jobs.arrival, jobs, prefix)
    if policy == "threshold":
        return Outcome.of_starts(_threshold_starts(jobs, knowledge, threshold), jobs, prefix)
    if policy in INTERRUPTIBLE:
        held = _actuals(grid, jobs) if policy in ORACLES else _beliefs(knowledge, jobs)
        return Outcome.of_chunks(*_chunked(jobs, np.arange(len(jobs)), held, min_chunk), prefix, len(jobs))
    if policy == "oracle":
        return Outcome.of_starts(jobs.arrival + _oracle_offsets(jobs, prefix), jobs, prefix)
    if policy == "forecast-window":
        return Outcome.of_starts(jobs.arrival + _forecast_window_offsets(jobs, knowledge), jobs, prefix)
    raise ValueError(f"{policy!r} is not a policy")


def _actuals(grid: Grid, jobs: Jobs):
    """For chosen jobs: the actual intensities from arrival to the latest deadline among them (hindsight)."""

    def held(chosen: np.ndarray) -> np.ndarray:
        points = jobs.arrival[chosen, None] + np.arange(int(jobs.span[chosen].max()))
        return grid.values[np.minimum(points, len(grid) - 1)]

    return held


def _beliefs(knowledge: Knowledge, jobs: Jobs):
    """For chosen jobs: the forecast as held at arrival (bridged to the last actual), to the latest deadline among
    them."""

    def held(chosen: np.ndarray) -> np.ndarray:
        return knowledge.believed(jobs.arrival[chosen], int(jobs.span[chosen].max()))

    return held


def job_blocks(items, width: int):
    """Slices of `items` (jobs, or indices of jobs) with about JOB_CELLS jobs x points each."""
    per_block = max(1, JOB_CELLS // max(width, 1))
    return (slice(first, first + per_block) for first in range(0, len(items), per_block))


def _forecast_window_offsets(jobs: Jobs, knowledge: Knowledge) -> np.ndarray:
    """The start with the lowest integrated forecast as held at arrival, a block of jobs at a time."""
    offsets = np.zeros(len(jobs), dtype=np.int64)
    for block in job_blocks(jobs, int(jobs.span.max())):
        span = int(jobs.span[block].max())
        values = np.where(
            np.arange(span) < jobs.span[block, None], knowledge.believed(jobs.arrival[block], span), np.nan
        )
        offsets[block] = best_windows(values, jobs.duration[block], jobs.slack[block])
    return offsets


def _oracle_offsets(jobs: Jobs, prefix: np.ndarray) -> np.ndarray:
    """The cheapest start by the actuals, read from the same prefix sums as the costs (earliest of equals)."""
    offsets = np.zeros(len(jobs), dtype=np.int64)
    for block in job_blocks(jobs, int(jobs.slack.max()) + 1):
        starts = jobs.arrival[block, None] + np.arange(int(jobs.slack[block].max()) + 1)
        ends = np.minimum(starts + jobs.duration[block, None], len(prefix) - 1)
        costs = prefix[ends] - prefix[np.minimum(starts, len(prefix) - 1)]
        late = np.arange(starts.shape[1]) > jobs.slack[block, None]
        offsets[block] = np.argmin(np.where(late, np.inf, costs), axis=1)
    return offsets


def _chunked(jobs: Jobs, index: np.ndarray, belief, min_chunk: int) -> tuple[np.ndarray, ...]:
    """Interruptible placement of jobs[index] by `belief(index)`, the belief each held at arrival, a block at a time.

    Jobs that may not be split run in one piece. Returns the chunks (job, start, length).
    """
    pieces = []
    for block in job_blocks(index, int(jobs.span[index].max())):
        chosen = index[block]
        values = belief(chosen)
        mask = cheapest_points(values, jobs.duration[chosen], jobs.slack[chosen], jobs.interruptible[chosen], min_chunk)
        job, start, length = chunks_of(mask, jobs.arrival[chosen])
        pieces.append((chosen[job], start, length))
    return tuple(np.concatenate(parts) for parts in zip(*pieces))


def _threshold_starts(jobs: Jobs, knowledge: Knowledge, threshold: Optional[float]) -> np.ndarray:
    """The reference rule: the first point whose intensity (as known then) is at or under the threshold, else the
    deadline."""
    if threshold is None:
        raise FieldError("threshold", "the threshold policy needs a threshold in gCO2/kWh")
    first, last = int(jobs.arrival.min()), int((jobs.arrival + jobs.slack).max())
    under = np.zeros(last - first + 1, dtype=bool)
    per_block = max(1, JOB_CELLS // knowledge.horizon)
    for start in range(first, last + 1, per_block):
        rows = np.arange(start, min(start + per_block, last + 1))
        under[rows - first] = knowledge.believed(rows)[:, 0] <= threshold
    positions = np.arange(len(under))
    next_under = np.minimum.accumulate(np.where(under, positions, len(under))[::-1])[::-1] + first
    return np.minimum(next_under[jobs.arrival - first], jobs.arrival + jobs.slack)


def _nowcast_policies(
    wanted: list[str], jobs: Jobs, knowledge: Knowledge, min_chunk: int, prefix: np.ndarray
) -> dict[str, Outcome]:
    """`rolling` and `interruptible` from one pass of the nowcast over the rows either of them decides at."""
    deciders = [_Rolling(jobs) if policy == "rolling" else _AtArrival(jobs, min_chunk) for policy in wanted]
    nowcast = knowledge.nowcast()
    for rows, expected in nowcast.blocks(np.unique(np.concatenate([decider.rows() for decider in deciders]))):
        for decider in deciders:
            decider.feed(rows, expected)
    knowledge.fallback_rows += nowcast.fallback_rows
    return {policy: decider.outcome(prefix) for policy, decider in zip(wanted, deciders)}


class _AtArrival:
    """`interruptible`: chunks chosen once at arrival by the nowcast, as its rows stream past (jobs by arrival)."""

    def __init__(self, jobs: Jobs, min_chunk: int) -> None:
        self.jobs, self.min_chunk, self.pieces = jobs, min_chunk, []

    def rows(self) -> np.ndarray:
        return np.unique(self.jobs.arrival)

    def feed(self, rows: np.ndarray, expected: np.ndarray) -> None:
        arrival = self.jobs.arrival
        index = np.arange(np.searchsorted(arrival, rows[0]), np.searchsorted(arrival, rows[-1], side="right"))
        if len(index):
            self.pieces.append(
                _chunked(
                    self.jobs, index, lambda chosen: expected[np.searchsorted(rows, arrival[chosen])], self.min_chunk
                )
            )

    def outcome(self, prefix: np.ndarray) -> Outcome:
        job, start, length = (np.concatenate(parts) for parts in zip(*self.pieces))
        return Outcome.of_chunks(job, start, length, prefix, len(self.jobs))


class _Rolling:
    """Re-plan at every point: start now when no later start before the deadline is expected to be cheaper.

    Fed the nowcast's rows in time order; each job starts at the first row that says "now", or at its last start.
    """

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.starts = jobs.arrival + jobs.slack
        self.pending = jobs.slack > 0
        self.longest = int(jobs.slack.max())

    def rows(self) -> np.ndarray:
        """Every row where some job has a choice left: arrival to the point before its last start."""
        jobs = self.jobs
        cover = np.zeros(int((jobs.arrival + jobs.slack).max()) + 2, dtype=np.int64)
        np.add.at(cover, jobs.arrival[self.pending], 1)
        np.add.at(cover, (jobs.arrival + jobs.slack)[self.pending], -1)
        return np.flatnonzero(np.cumsum(cover) > 0)

    def feed(self, rows: np.ndarray, expected: np.ndarray) -> None:
        jobs = self.jobs
        # jobs come in arrival order: only those arriving from rows[0] - the longest slack to rows[-1] can be deciding
        first, end = (
            np.searchsorted(jobs.arrival, rows[0] - self.longest),
            np.searchsorted(jobs.arrival, rows[-1], side="right"),
        )
        near = np.arange(first, end)
        active = near[self.pending[near] & (jobs.arrival[near] + jobs.slack[near] - 1 >= rows[0])]  # a choice left here
        unknown = np.isnan(expected)
        sums = np.pad(np.cumsum(np.where(unknown, 0.0, expected), axis=1), ((0, 0), (1, 0)))
        counts = np.pad(np.cumsum(unknown, axis=1), ((0, 0), (1, 0)))
        for duration in np.unique(jobs.duration[active]):
            self._decide(active[jobs.duration[active] == duration], int(duration), rows, sums, counts)

    def _decide(self, group: np.ndarray, duration: int, rows: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
        jobs = self.jobs
        low = np.maximum(jobs.arrival[group], rows[0])
        high = np.minimum(jobs.arrival[group] + jobs.slack[group] - 1, rows[-1])
        sizes = high - low + 1
        member = np.repeat(np.arange(len(group)), sizes)
        row = low[member] + np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        used, where_used = np.unique(row, return_inverse=True)
        position = np.searchsorted(rows, used)
        starts = np.arange(int(jobs.slack[group].max()) + 1)
        total = sums[position[:, None], starts + duration] - sums[position[:, None], starts]
        unknown = counts[position[:, None], starts + duration] - counts[position[:, None], starts] > 0
        costs = np.where(unknown, np.inf, total)
        best_later = np.minimum.accumulate(costs[:, 1:], axis=1)  # [r, n]: the lowest cost among starts 1..n+1
        left = jobs.arrival[group][member] + jobs.slack[group][member] - row  # later starts still allowed
        now = costs[where_used, 0] <= best_later[where_used, left - 1]
        first = np.full(len(group), np.iinfo(np.int64).max)
        np.minimum.at(first, member[now], row[now])
        decided = first < np.iinfo(np.int64).max
        self.starts[group[decided]] = first[decided]
        self.pending[group[decided]] = False

    def outcome(self, prefix: np.ndarray) -> Outcome:
        return Outcome.of_starts(self.starts, self.jobs, prefix)
