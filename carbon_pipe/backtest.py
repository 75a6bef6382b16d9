"""Score scheduling policies on a historical trace against the perfect-information optimum. Pure numpy: no I/O, no clock.

Semantics (the README's "Backtest" section says the same for users):

- The trace is put on its own regular time grid, whose step is the greatest common divisor of its intervals. A
  piecewise-constant trace is exactly the same function on that grid; a gap in the data is a run of points that
  hold the last value. "Trace points" below are the points of this grid.
- Job j arrives at grid point a_j = j * every (from the first point) while a_j + slack + duration fits in the
  trace. It may start at any point in [a_j, a_j + slack] and then runs `duration` at constant power, so its
  emissions are proportional to the sum of the intensities of the points it covers.
- Savings = 1 - (sum of a policy's job emissions) / (sum of the same jobs started at arrival).
- Information: a policy deciding at point i knows the actuals of points that have ended (< i) and the latest
  forecast issued at or before the time of point i. Only the oracles read `grid.values` beyond that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import nowcast
from .errors import UsageError
from .intensity.series import IntensitySeries
from .timeutil import format_duration, iso

if TYPE_CHECKING:  # traces imports pandas; the maths here needs only the arrays
    from .intensity.traces import ForecastVintages

POLICIES = ("now", "threshold", "forecast-window", "rolling", "interruptible", "oracle", "oracle-interruptible")
INTERRUPTIBLE = ("interruptible", "oracle-interruptible")
MAX_GRID_GROWTH = 8  # a grid this many times denser than the trace means its times are not on a common step


@dataclass(frozen=True)
class Grid:
    """Point i holds values[i] gCO2/kWh over [start + i * step, start + (i + 1) * step)."""

    start: float
    step: float
    values: np.ndarray

    def index(self, moment: float) -> float:
        return (moment - self.start) / self.step

    def slots(self, seconds: float, name: str) -> int:
        """A duration as a whole number of grid steps; anything else would start or stop between points."""
        count = seconds / self.step
        if abs(count - round(count)) > 1e-9:
            raise UsageError(f"{name}: {format_duration(seconds)} is not a multiple of the trace step {format_duration(self.step)}")
        return int(round(count))


def to_grid(series: IntensitySeries, since: Optional[float] = None, until: Optional[float] = None) -> Grid:
    """The trace on its own regular grid, optionally cut to [since, until)."""
    bounds = np.round(series.boundaries).astype(np.int64)
    if not np.allclose(bounds, series.boundaries):
        raise UsageError(f"{series.region}: trace times must be whole seconds")
    step = int(np.gcd.reduce(np.diff(bounds)))
    count = (bounds[-1] - bounds[0]) // step
    if count > MAX_GRID_GROWTH * len(series.values):
        raise UsageError(
            f"{series.region}: trace times share no common step (greatest common divisor {step} s); resample it first"
        )
    times = bounds[0] + step * np.arange(count)
    keep = np.ones(count, dtype=bool)
    if since is not None:
        keep &= times >= since
    if until is not None:
        keep &= times < until
    if keep.sum() < 2:
        raise UsageError(f"{series.region}: fewer than two trace points in the chosen period")
    points = np.searchsorted(bounds, times[keep], side="right") - 1
    return Grid(float(times[keep][0]), float(step), series.values[points].astype(float))


@dataclass(frozen=True)
class Jobs:
    arrivals: np.ndarray  # grid indices
    duration: int  # grid steps
    slack: int  # grid steps


def make_jobs(grid: Grid, duration: float, slack: float, every: float, not_before: Optional[float] = None) -> Jobs:
    """Arrivals every `every` from the first point while arrival + slack + duration stays inside the trace."""
    if duration <= 0:
        raise UsageError("--duration: must be positive")
    if every <= 0:
        raise UsageError("--every: must be positive")
    run, wait, spacing = grid.slots(duration, "--duration"), grid.slots(slack, "--slack"), grid.slots(every, "--every")
    last = len(grid.values) - wait - run
    if last < 0:
        raise UsageError(
            f"trace too short: {format_duration(len(grid.values) * grid.step)} of data cannot hold one "
            f"{format_duration(duration)} job with {format_duration(slack)} slack"
        )
    arrivals = np.arange(0, last + 1, spacing)
    if not_before is not None:
        arrivals = arrivals[arrivals >= np.ceil(grid.index(not_before) - 1e-9)]
        if len(arrivals) == 0:
            raise UsageError("no job fits between the first forecast issue and the end of the trace")
    return Jobs(arrivals, run, wait)


# --- What a policy knows -------------------------------------------------------------------------------------


class Forecasts(ABC):
    label: str

    @abstractmethod
    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        """[r, h]: the latest forecast issued by the time of point rows[r], for point rows[r] + h (NaN: none)."""


class SyntheticForecasts(Forecasts):
    """Actual + Gaussian noise with sd = error x the trace mean, one draw per point (the Let's Wait Awhile model).

    Every issue carries the same draw for a point, so a re-issued forecast differs only in the points already past,
    which are actuals by then.
    """

    def __init__(self, grid: Grid, error: float, seed: int) -> None:
        if error < 0:
            raise UsageError("--forecast-error: must be >= 0")
        noise = np.random.default_rng(seed).normal(0.0, error * grid.values.mean(), len(grid.values))
        self.noisy = np.append(grid.values + noise, np.nan)  # the extra NaN answers for points past the trace
        self.label = f"synthetic: actual + N(0, {error:g} x mean {grid.values.mean():.1f} g/kWh), seed {seed}"

    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        targets = np.minimum(rows[:, None] + np.arange(horizon), len(self.noisy) - 1)
        return self.noisy[targets]


class IssuedForecasts(Forecasts):
    """Real vintages on the trace grid. Each value holds until the next target time of the file's step."""

    def __init__(self, grid: Grid, vintages: "ForecastVintages") -> None:
        origin = vintages.origin
        gaps = np.diff(vintages.target)[np.diff(vintages.issued) == 0]
        fstep = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else grid.step
        if fstep < grid.step - 1e-9:
            raise UsageError(f"{origin}: forecast step {format_duration(fstep)} is finer than the trace step {format_duration(grid.step)}")
        per_value = grid.slots(fstep, f"{origin}: forecast step")
        first_index = grid.index(vintages.target)
        off_grid = np.abs(first_index - np.round(first_index)) > 1e-6
        if off_grid.any():
            row = int(off_grid.nonzero()[0][0])
            raise UsageError(f"{origin}: target time {iso(vintages.target[row])} is not on the trace's {format_duration(grid.step)} grid")
        issues, vintage = np.unique(vintages.issued, return_inverse=True)
        # one (vintage, grid point, value) per covered point
        points = np.round(first_index).astype(np.int64)[:, None] + np.arange(per_value)
        vintage = np.broadcast_to(vintage[:, None], points.shape).ravel()
        values = np.broadcast_to(vintages.values[:, None], points.shape).ravel()
        points = points.ravel()
        inside = (points >= 0) & (points < len(grid.values))
        vintage, points, values = vintage[inside], points[inside], values[inside]
        self.first = np.full(len(issues), np.iinfo(np.int64).max)
        np.minimum.at(self.first, vintage, points)
        width = int((points - self.first[vintage]).max()) + 1 if len(points) else 1
        if len(issues) * width > 50_000_000:
            raise UsageError(f"{origin}: {len(issues)} forecast issues x {width} points is too large to hold")
        self.table = np.full((len(issues), width), np.nan)
        self.table[vintage, points - self.first[vintage]] = values
        times = grid.start + grid.step * np.arange(len(grid.values))
        self.issue_at_row = np.searchsorted(issues, times, side="right") - 1  # -1: nothing issued yet
        self.issues = issues
        self.label = f"issued: {origin} ({len(issues)} issues)"

    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        issue = self.issue_at_row[rows]
        known = issue >= 0
        issue = np.where(known, issue, 0)
        column = rows[:, None] + np.arange(horizon) - self.first[issue][:, None]
        inside = known[:, None] & (column >= 0) & (column < self.table.shape[1])
        return np.where(inside, self.table[issue[:, None], np.clip(column, 0, self.table.shape[1] - 1)], np.nan)


def beliefs(grid: Grid, forecasts: Forecasts, rows: np.ndarray, horizon: int) -> np.ndarray:
    """What a policy at each row believes about the next `horizon` points.

    The forecast, where it covers them; points between now and the forecast's first target (a forecast issued at
    12:00 whose first target is 12:05) take the last known actual. Beyond the forecast: NaN, unknown.
    """
    believed = forecasts.forecast(rows, horizon)
    covered = ~np.isnan(believed)
    lead_gap = (np.arange(horizon) < covered.argmax(axis=1)[:, None]) & covered.any(axis=1)[:, None] & (rows >= 1)[:, None]
    last_actual = grid.values[np.maximum(rows - 1, 0)]
    return np.where(lead_gap, last_actual[:, None], believed)


# --- Policies ------------------------------------------------------------------------------------------------


class Knowledge:
    """What the policies may know at each point, worked out once per backtest for the horizon the jobs need."""

    def __init__(self, grid: Grid, forecasts: Forecasts, horizon: int) -> None:
        self.grid = grid
        self.believed = beliefs(grid, forecasts, np.arange(len(grid.values)), horizon)
        self._expected: Optional[np.ndarray] = None

    @property
    def expected(self) -> np.ndarray:
        """The forecast, error-corrected and smoothed from the past (see carbon_pipe.nowcast)."""
        if self._expected is None:
            self._expected = nowcast.expected_intensity(self.grid.values, self.believed, self.grid.step)
        return self._expected


def window_sums(values: np.ndarray, length: int) -> np.ndarray:
    """Sums over every run of `length` consecutive columns (last axis); NaN where a run touches a NaN."""
    unknown = np.isnan(values)
    sums = np.cumsum(np.where(unknown, 0.0, values), axis=-1)
    counts = np.cumsum(unknown, axis=-1)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    sums, counts = np.pad(sums, pad), np.pad(counts, pad)
    total = sums[..., length:] - sums[..., :-length]
    return np.where(counts[..., length:] - counts[..., :-length] > 0, np.nan, total)


def first_minimum(costs: np.ndarray) -> np.ndarray:
    """Column of the lowest cost per row, the earliest of equals; a row with nothing known picks column 0 (now)."""
    return np.argmin(np.where(np.isnan(costs), np.inf, costs), axis=1)


def start_offsets(policy: str, jobs: Jobs, knowledge: Knowledge, threshold: Optional[float] = None) -> np.ndarray:
    """Each job's start, in grid steps after its arrival, for the non-interruptible policies."""
    arrivals, run, slack = jobs.arrivals, jobs.duration, jobs.slack
    if policy == "now":
        return np.zeros(len(arrivals), dtype=np.int64)
    if policy == "oracle":
        costs = sliding_window_view(window_sums(knowledge.grid.values, run), slack + 1)[arrivals]
        return first_minimum(costs)
    if policy == "forecast-window":
        return first_minimum(window_sums(knowledge.believed[arrivals], run))
    if policy == "threshold":
        return threshold_offsets(knowledge.believed[:, 0] <= threshold, arrivals, slack)
    if policy == "rolling":
        return rolling_offsets(jobs, knowledge.expected)
    raise ValueError(f"{policy!r} is not a policy with a single start")


def threshold_offsets(under: np.ndarray, arrivals: np.ndarray, slack: int) -> np.ndarray:
    """The reference rule: the first point whose intensity (as known then) is at or under the threshold, else the deadline."""
    positions = np.arange(len(under))
    next_under = np.minimum.accumulate(np.where(under, positions, len(under))[::-1])[::-1]
    return np.minimum(next_under[arrivals] - arrivals, slack)


def rolling_offsets(jobs: Jobs, expected: np.ndarray) -> np.ndarray:
    """Re-plan at every point: start now when no later start in the window is expected to be cheaper."""
    arrivals, run, slack = jobs.arrivals, jobs.duration, jobs.slack
    rows = np.arange(arrivals[0], arrivals[-1] + slack + 1)
    costs = window_sums(expected[rows], run)
    costs = np.where(np.isnan(costs), np.inf, costs)
    # best_later[r, n]: the lowest expected cost among the starts 1..n+1 steps after row r
    best_later = np.minimum.accumulate(costs[:, 1:], axis=1)
    steps = np.arange(slack)
    at = arrivals[:, None] - rows[0] + steps
    start_now = costs[at, 0] <= best_later[at, slack - 1 - steps]
    start_now = np.concatenate([start_now, np.ones((len(arrivals), 1), dtype=bool)], axis=1)
    return start_now.argmax(axis=1)


def interruptible_costs(grid: Grid, jobs: Jobs, believed: np.ndarray, min_chunk: int) -> np.ndarray:
    """True cost of the cheapest-by-belief set of `duration` points before the deadline, in chunks >= min_chunk.

    `believed` is (jobs, slack + duration): what the policy expects of each point from arrival to the deadline.
    A job whose belief cannot place it (unknown points) runs at arrival.
    """
    arrivals, run = jobs.arrivals, jobs.duration
    span = jobs.slack + run
    actual = grid.values[arrivals[:, None] + np.arange(span)]
    believed = np.where(np.isnan(believed), np.inf, believed)
    min_chunk = min(min_chunk, run)
    if min_chunk <= 1:
        chosen = np.argpartition(believed, run - 1, axis=1)[:, :run]
        expected = np.take_along_axis(believed, chosen, axis=1).sum(axis=1)
        cost = np.take_along_axis(actual, chosen, axis=1).sum(axis=1)
    else:
        expected, cost = _chunked_minimum(believed, actual, run, min_chunk)
    at_arrival = actual[:, :run].sum(axis=1)
    return np.where(np.isfinite(expected), cost, at_arrival)


def _chunked_minimum(believed: np.ndarray, actual: np.ndarray, run: int, min_chunk: int, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic programme over the points in time order, for a block of jobs at a time (blocks stay in cache).

    With n points taken before point t: `closed[t][n]` is the cheapest plan that may stop (the last point was
    skipped, or ends a chunk of at least m points), `running[n]` the cheapest whose last point is in a chunk of
    at least m. A chunk either grows by one point or starts as m points at once, so no plan has a short chunk.
    The actual cost rides along with the believed one.
    """
    m = min_chunk
    expected, cost = np.empty(len(believed)), np.empty(len(believed))
    for first in range(0, len(believed), block):
        plan, paid = believed[first : first + block], actual[first : first + block]
        jobs, span = plan.shape
        chunk_plan = sliding_window_view(plan, m, axis=1).sum(axis=2)[:, :, None]
        chunk_paid = sliding_window_view(paid, m, axis=1).sum(axis=2)[:, :, None]
        closed_plan = np.full((span + 1, jobs, run + 1), np.inf)
        closed_paid = np.zeros_like(closed_plan)
        closed_plan[0, :, 0] = 0.0
        running_plan, running_paid = np.full((jobs, run + 1), np.inf), np.zeros((jobs, run + 1))
        grown_plan, grown_paid = np.full_like(running_plan, np.inf), np.zeros_like(running_paid)
        for t in range(span):
            np.add(running_plan[:, :-1], plan[:, t, None], out=grown_plan[:, 1:])
            np.add(running_paid[:, :-1], paid[:, t, None], out=grown_paid[:, 1:])
            chunk_start = t + 1 - m
            if chunk_start >= 0:
                _pick(
                    grown_plan[:, m:], grown_paid[:, m:],
                    closed_plan[chunk_start, :, : run + 1 - m] + chunk_plan[:, chunk_start],
                    closed_paid[chunk_start, :, : run + 1 - m] + chunk_paid[:, chunk_start],
                    grown_plan[:, m:], grown_paid[:, m:],
                )  # fmt: skip
            running_plan, grown_plan, running_paid, grown_paid = grown_plan, running_plan, grown_paid, running_paid
            _pick(closed_plan[t], closed_paid[t], running_plan, running_paid, closed_plan[t + 1], closed_paid[t + 1])
        expected[first : first + block], cost[first : first + block] = closed_plan[span, :, run], closed_paid[span, :, run]
    return expected, cost


def _pick(plan_a, paid_a, plan_b, paid_b, plan_out, paid_out) -> None:
    """The lower believed cost of two branches, and the actual cost of that branch."""
    take_a = plan_a <= plan_b
    paid_out[...] = np.where(take_a, paid_a, paid_b)  # a fresh array first: the outputs may alias the inputs
    np.minimum(plan_a, plan_b, out=plan_out)


# --- Scores --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyScore:
    policy: str
    jobs: int
    savings_pct: float
    oracle_savings_pct: float  # of the oracle of the same kind: oracle-interruptible for interruptible policies
    fraction_of_oracle: Optional[float]
    mean_wait_hours: Optional[float]  # None for interruptible policies (they have no single start)
    mean_intensity_g_per_kwh: float


def policy_costs(policy: str, jobs: Jobs, knowledge: Knowledge, threshold: Optional[float], min_chunk: int):
    """(emissions per job in intensity x steps, start offset per job or None for the interruptible ones)."""
    grid = knowledge.grid
    if policy in INTERRUPTIBLE:
        span = jobs.slack + jobs.duration
        if policy == "oracle-interruptible":
            believed = grid.values[jobs.arrivals[:, None] + np.arange(span)]
        else:
            believed = knowledge.expected[jobs.arrivals]
        return interruptible_costs(grid, jobs, believed, min_chunk), None
    offsets = start_offsets(policy, jobs, knowledge, threshold)
    return window_sums(grid.values, jobs.duration)[jobs.arrivals + offsets], offsets


def score(
    policies: list[str], grid: Grid, jobs: Jobs, forecasts: Forecasts, threshold: Optional[float] = None, min_chunk: int = 1
) -> list[PolicyScore]:
    """One score per policy, each against the oracle of its kind, all on the same jobs."""
    check_policies(tuple(policies))
    if "threshold" in policies and threshold is None:
        raise UsageError("--threshold: the threshold policy needs a threshold in gCO2/kWh")
    if min_chunk < 1:
        raise UsageError("--min-chunk: must be at least one trace step")
    knowledge = Knowledge(grid, forecasts, jobs.slack + jobs.duration)
    at_arrival = window_sums(grid.values, jobs.duration)[jobs.arrivals].sum()
    results: dict[str, tuple[float, Optional[np.ndarray], float]] = {}

    def result(policy: str) -> tuple[float, Optional[np.ndarray], float]:
        if policy not in results:
            cost, offsets = policy_costs(policy, jobs, knowledge, threshold, min_chunk)
            savings = 100.0 * (1.0 - cost.sum() / at_arrival) if at_arrival > 0 else 0.0
            results[policy] = (savings, offsets, float(cost.sum()))
        return results[policy]

    scores = []
    for policy in policies:
        savings, offsets, total = result(policy)
        oracle = result("oracle-interruptible" if policy in INTERRUPTIBLE else "oracle")[0]
        scores.append(
            PolicyScore(
                policy=policy,
                jobs=len(jobs.arrivals),
                savings_pct=savings,
                oracle_savings_pct=oracle,
                fraction_of_oracle=savings / oracle if oracle > 0 else None,
                mean_wait_hours=None if offsets is None else float(offsets.mean() * grid.step / 3600),
                mean_intensity_g_per_kwh=total / (len(jobs.arrivals) * jobs.duration),
            )
        )
    return scores


# --- One backtest, as the CLI runs it ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    duration: float  # seconds
    slack: float
    every: float
    policies: tuple[str, ...]
    forecast_error: Optional[float] = None  # synthetic forecasts (the default, 0.1) unless vintages are given
    seed: int = 0
    threshold: Optional[float] = None
    min_chunk: Optional[float] = None  # default: one hour or one trace step, whichever is longer
    since: Optional[float] = None
    until: Optional[float] = None


DEFAULT_FORECAST_ERROR = 0.1


def default_policies(threshold: Optional[float]) -> tuple[str, ...]:
    """Every policy; the threshold rule only when there is a threshold to apply."""
    return tuple(p for p in POLICIES if p != "threshold" or threshold is not None)


def check_policies(policies: tuple[str, ...]) -> None:
    for policy in policies:
        if policy not in POLICIES:
            raise UsageError(f"--policy: unknown policy {policy!r} (known: {', '.join(POLICIES)})")


def run(series: IntensitySeries, setup: Setup, vintages: Optional["ForecastVintages"] = None) -> list[dict]:
    """Score the policies on one trace; one dict per policy, each carrying the setup it was scored under."""
    if vintages is not None and setup.forecast_error is not None:
        raise UsageError("--forecast-error: synthetic forecasts and --forecasts exclude each other")
    grid = to_grid(series, setup.since, setup.until)
    if vintages is None:
        forecasts: Forecasts = SyntheticForecasts(grid, DEFAULT_FORECAST_ERROR if setup.forecast_error is None else setup.forecast_error, setup.seed)
        jobs = make_jobs(grid, setup.duration, setup.slack, setup.every)
    else:
        issued = IssuedForecasts(grid, vintages)
        forecasts = issued
        jobs = make_jobs(grid, setup.duration, setup.slack, setup.every, not_before=float(issued.issues[0]))
    min_chunk = grid.slots(setup.min_chunk, "--min-chunk") if setup.min_chunk is not None else max(1, int(np.ceil(3600 / grid.step)))
    context = {
        "trace": series.region,
        "from": iso(grid.start),
        "until": iso(grid.start + grid.step * len(grid.values)),
        "step_seconds": grid.step,
        "duration_hours": setup.duration / 3600,
        "slack_hours": setup.slack / 3600,
        "every_hours": setup.every / 3600,
        "min_chunk_hours": min_chunk * grid.step / 3600,
        "threshold_g_per_kwh": setup.threshold,
        "forecast": forecasts.label,
    }
    return [{**vars(s), **context} for s in score(list(setup.policies), grid, jobs, forecasts, setup.threshold, min_chunk)]


def as_table(results: list[dict]) -> str:
    """A plain-text table of the scores under a short description of the setup."""
    first = results[0]
    lines = [
        f"{first['trace']}: {first['jobs']} jobs of {first['duration_hours']:g} h, slack {first['slack_hours']:g} h, "
        f"one every {first['every_hours']:g} h; trace step {format_duration(first['step_seconds'])}",
        f"forecast: {first['forecast']}",
        "",
        f"{'policy':<22}{'savings %':>10}{'oracle %':>10}{'of oracle':>11}{'wait h':>8}{'g/kWh':>8}",
    ]
    for r in results:
        fraction = "-" if r["fraction_of_oracle"] is None else f"{r['fraction_of_oracle']:.3f}"
        wait = "-" if r["mean_wait_hours"] is None else f"{r['mean_wait_hours']:.1f}"
        lines.append(
            f"{r['policy']:<22}{r['savings_pct']:>10.2f}{r['oracle_savings_pct']:>10.2f}{fraction:>11}{wait:>8}{r['mean_intensity_g_per_kwh']:>8.1f}"
        )
    return "\n".join(lines)
