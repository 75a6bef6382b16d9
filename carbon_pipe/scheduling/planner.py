"""Pure scheduling maths: give it a series, a time and a job; it touches no network and no clock.

A job of `duration` seconds may start anywhere in [earliest, latest] (flexible) or run in pieces that end by
a deadline (interruptible). Its expected emissions are proportional to the integral of intensity over the time
it runs, so every rule below compares plans by that integral, exactly: intensity is piecewise constant.
Integrals that differ by less than TIE_RTOL of themselves are equal (the rest is float rounding): among equal
plans the earliest start wins, and one uninterrupted run before a split one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..intensity.series import IntensitySeries
from ..timeutil import format_duration, iso

# Bound the chunked planner's time and memory (cells x job cells states): a week at 15-min steps fits easily.
MAX_GRID_CELLS = 4000
MAX_GRID_STATES = 2_000_000
# Relative difference under which two plans' integrals are equal: rounding leaves ~1e-16 per point an integral
# covers, while real differences between a trace's values are many orders larger.
TIE_RTOL = 1e-9


@dataclass(frozen=True)
class Chunk:
    """One stretch of running: [start, end) and its mean intensity."""

    start: float
    end: float
    mean_intensity: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    rule: str
    chunks: tuple[Chunk, ...]
    expected_mean_intensity: float
    now_mean_intensity: float
    reason: str
    mode: str = "flexible"

    @property
    def start(self) -> float:
        return self.chunks[0].start

    @property
    def end(self) -> float:
        return self.chunks[-1].end

    @property
    def duration(self) -> float:
        return sum(chunk.duration for chunk in self.chunks)

    @property
    def saving_vs_now_pct(self) -> float:
        if self.now_mean_intensity == 0:
            return 0.0
        return 100.0 * (1.0 - self.expected_mean_intensity / self.now_mean_intensity)


def first_least(costs: Sequence[float] | np.ndarray) -> int:
    """Index of the first cost within TIE_RTOL of the least: the earliest (or first listed) of equals."""
    costs = np.asarray(costs, dtype=float)
    least = costs.min()
    return int(np.flatnonzero(costs <= least + TIE_RTOL * abs(least))[0])


def _tie_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value in increasing order; values within TIE_RTOL of the least of their run share one."""
    ranks = np.empty(len(values), dtype=np.int64)
    rank, anchor = -1, 0.0
    for index in np.argsort(values, kind="stable"):
        if rank < 0 or values[index] > anchor + TIE_RTOL * abs(anchor):
            rank, anchor = rank + 1, values[index]
        ranks[index] = rank
    return ranks


def _one_chunk(rule: str, series: IntensitySeries, start: float, duration: float, now_mean: float, reason: str) -> Plan:
    mean = series.mean(start, start + duration)
    return Plan(rule, (Chunk(start, start + duration, mean),), mean, now_mean, reason)


def _latest_feasible(series: IntensitySeries, earliest: float, latest: float, duration: float) -> float:
    if not series.covers(earliest, earliest + duration):
        raise ValueError(
            f"the intensity series ({iso(series.start)} to {iso(series.end)}) does not cover a "
            f"{format_duration(duration)} job starting {iso(earliest)}"
        )
    return min(latest, series.end - duration)


def _unless_negligible(
    plan: Plan, series: IntensitySeries, earliest: float, duration: float, min_saving_pct: float
) -> Plan:
    """`plan`, or one run from `earliest` when the plan saves less than `min_saving_pct` % against that: a
    saving far below the forecast's error (or mere rounding) is not worth a wait or a pause."""
    if plan.saving_vs_now_pct >= min_saving_pct or (plan.start == earliest and len(plan.chunks) == 1):
        return plan
    why = (
        f"starting now: the best plan ({plan.expected_mean_intensity:.1f} g/kWh from {iso(plan.start)}) saves "
        f"{plan.saving_vs_now_pct:.2g} % vs {plan.now_mean_intensity:.1f} now, "
        f"under scheduler.min_saving_pct ({min_saving_pct:g} %)"
    )
    now = Chunk(earliest, earliest + duration, series.mean(earliest, earliest + duration))
    return replace(plan, chunks=(now,), expected_mean_intensity=now.mean_intensity, reason=why)


def lowest_mean_start(
    series: IntensitySeries, earliest: float, latest: float, duration: float, min_saving_pct: float = 0.0
) -> Plan:
    """The flexible-start optimum: the start in [earliest, latest] with the lowest mean intensity over the job;
    ties go to the earlier start, and a saving under `min_saving_pct` % against starting now starts now.

    The integral over [s, s + duration] is piecewise linear in s, with kinks only where s or s + duration
    crosses a point boundary, so its minimum lies at a window edge or at one of those kinks: checking
    them is exact, not a grid search.
    """
    latest = _latest_feasible(series, earliest, latest, duration)
    edges = series.boundaries
    kinks = np.concatenate([edges, edges - duration])
    candidates = np.unique(np.concatenate([[earliest, latest], kinks[(kinks > earliest) & (kinks < latest)]]))
    integrals = series.integral(candidates, candidates + duration)
    best = first_least(integrals)  # candidates are in time order
    start = float(candidates[best])
    now_mean = series.mean(earliest, earliest + duration)
    mean = float(integrals[best] / duration)
    plan = _one_chunk(
        "lowest-mean",
        series,
        start,
        duration,
        now_mean,
        f"lowest mean intensity over the {format_duration(duration)} job within the allowed delay: "
        f"start after {format_duration(start - earliest)} at {mean:.1f} g/kWh vs {now_mean:.1f} now",
    )
    return _unless_negligible(plan, series, earliest, duration, min_saving_pct)


def threshold_start(series: IntensitySeries, earliest: float, latest: float, duration: float, threshold: float) -> Plan:
    """The reference rule done right: start at the first moment intensity <= threshold, else at `latest` (never
    later)."""
    latest = _latest_feasible(series, earliest, latest, duration)
    if series.at(earliest) <= threshold:
        start, why = earliest, f"intensity {series.at(earliest):.1f} is at or under the threshold {threshold:g} now"
    else:
        later = series.boundaries[:-1][(series.boundaries[:-1] > earliest) & (series.boundaries[:-1] <= latest)]
        under = later[series.values[np.searchsorted(series.boundaries, later, side="right") - 1] <= threshold]
        if len(under):
            start = float(under[0])
            why = (
                f"intensity first falls to {series.at(start):.1f} (threshold {threshold:g}) "
                f"after {format_duration(start - earliest)}"
            )
        else:
            start = latest
            why = f"intensity stays above the threshold {threshold:g}; starting at the maximum wait"
    return _one_chunk("threshold", series, start, duration, series.mean(earliest, earliest + duration), why)


def start_now(series: IntensitySeries, earliest: float, duration: float) -> Plan:
    _latest_feasible(series, earliest, earliest, duration)
    mean = series.mean(earliest, earliest + duration)
    return _one_chunk("now", series, earliest, duration, mean, "scheduler.rule is 'now': no waiting")


def interruptible_plan(
    series: IntensitySeries, earliest: float, deadline: float, duration: float, min_chunk: float = 0.0,
    min_saving_pct: float = 0.0,
) -> Plan:
    """The cheapest set of stretches in [earliest, deadline] adding up to `duration`, each at least `min_chunk` long;
    one run from `earliest` when that saves less than `min_saving_pct` % against it.

    Never worse than the flexible optimum that ends by the same deadline (one chunk is a valid plan). Without a
    minimum chunk the plan is exact in continuous time; with one, chunk edges lie on a grid (see `_grid_step`)
    that starts at `earliest` or at the next point boundary, exact whenever the series' boundaries lie on it.
    """
    deadline = min(deadline, series.end)
    if deadline - earliest < duration or not series.covers(earliest, earliest):
        raise ValueError(
            f"a {format_duration(duration)} job does not fit between {iso(earliest)} and {iso(deadline)} "
            f"in the intensity series ({iso(series.start)} to {iso(series.end)})"
        )
    flexible = lowest_mean_start(series, earliest, deadline - duration, duration)
    if min_chunk >= duration:
        chunks = flexible.chunks  # a job no longer than one chunk cannot be split
    elif min_chunk <= 0:
        chunks = _cheapest_stretches(series, earliest, deadline, duration)
    else:
        # A grid from `earliest`, and one from the next point boundary, which lines up with the series when
        # `earliest` does not (a wall-clock now): the better of the two.
        later = series.boundaries[(series.boundaries > earliest) & (series.boundaries <= deadline - duration)][:1]
        plans = [
            _cheapest_chunks_on_grid(series, origin, deadline, duration, min_chunk) for origin in [earliest, *later]
        ]
        chunks = plans[first_least([_integral(plan) for plan in plans])]
    mean = _integral(chunks) / duration
    if first_least([flexible.expected_mean_intensity, mean]) == 0:
        chunks, mean = flexible.chunks, flexible.expected_mean_intensity  # one uninterrupted run among equals
    runs = f"{len(chunks)} chunk{'s' if len(chunks) > 1 else ''}"
    floor = f" of at least {format_duration(min_chunk)}" if min_chunk > 0 else ""
    plan = Plan(
        "lowest-mean",
        chunks,
        mean,
        flexible.now_mean_intensity,
        f"cheapest {runs}{floor} adding up to the {format_duration(duration)} job, done by {iso(deadline)}: "
        f"{mean:.1f} g/kWh vs {flexible.now_mean_intensity:.1f} now",
        mode="interruptible",
    )
    return _unless_negligible(plan, series, earliest, duration, min_saving_pct)


def _integral(chunks: Sequence[Chunk]) -> float:
    return sum(chunk.mean_intensity * chunk.duration for chunk in chunks)


def _merge(series: IntensitySeries, spans: list[tuple[float, float]]) -> tuple[Chunk, ...]:
    """Touching spans become one chunk; each chunk's mean is computed exactly from the series."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(Chunk(start, end, series.mean(start, end)) for start, end in merged)


def _cheapest_stretches(
    series: IntensitySeries, earliest: float, deadline: float, duration: float
) -> tuple[Chunk, ...]:
    """No minimum chunk: take the cleanest points first (earlier first among equals), the last one in part.

    Filling the cheapest time first is optimal for a sum of intensity x time (a fractional knapsack).
    The part of the last point sits next to an already chosen neighbour where there is one, so it does not
    open a chunk of its own.
    """
    edges = np.unique(np.clip(series.boundaries, earliest, deadline))
    starts, ends = edges[:-1], edges[1:]
    values = np.array([series.at(s) for s in starts])
    chosen: dict[int, tuple[float, float]] = {}
    left = duration
    for i in np.lexsort((starts, _tie_ranks(values))):
        if left <= 0:
            break
        take = min(left, ends[i] - starts[i])
        if take == ends[i] - starts[i]:
            chosen[int(i)] = (starts[i], ends[i])
        elif int(i) + 1 in chosen and int(i) - 1 not in chosen:
            chosen[int(i)] = (ends[i] - take, ends[i])
        else:
            chosen[int(i)] = (starts[i], starts[i] + take)
        left -= take
    return _merge(series, list(chosen.values()))


def _grid_step(series: IntensitySeries, earliest: float, deadline: float, duration: float, min_chunk: float) -> float:
    """The chunked planner's step: it divides the duration exactly, and when the series' boundaries, the
    duration and the minimum chunk are whole seconds it is their common divisor measured from `earliest`,
    so the grid lands on every boundary (exact). Otherwise (or when that would be too fine for the
    MAX_GRID_* bounds) it is the duration split into equal cells of about a minute or more."""
    inside = series.boundaries[(series.boundaries > earliest) & (series.boundaries < deadline)]
    lengths = np.concatenate([inside - earliest, [duration, min_chunk]])
    window = deadline - earliest
    coarsest = max(window / MAX_GRID_CELLS, math.sqrt(window * duration / MAX_GRID_STATES))
    if np.all(np.abs(lengths - np.round(lengths)) < 1e-6):
        step = float(np.gcd.reduce(np.round(lengths).astype(np.int64)))
        if step >= max(coarsest, 1.0):
            return step
    target = max(coarsest, min(60.0, duration))
    return duration / math.ceil(duration / target - 1e-9)


def _cheapest_chunks_on_grid(
    series: IntensitySeries, earliest: float, deadline: float, duration: float, min_chunk: float
) -> tuple[Chunk, ...]:
    """Dynamic programme over grid cells: each cell runs or not, every run of cells is >= min_chunk long.

    off[i, k] / on[i, k]: least integral over the first i cells with k of them run, the last cell off / on
    (on: its chunk has reached the minimum). A chunk opens with its minimum number of cells in one step,
    so no state needs to remember how long the current chunk is.
    """
    step = _grid_step(series, earliest, deadline, duration, min_chunk)
    cells = int(math.floor((deadline - earliest) / step + 1e-9))
    need = int(round(duration / step))
    least = max(1, math.ceil(min_chunk / step - 1e-9))
    edges = earliest + step * np.arange(cells + 1)
    clipped = np.minimum(edges, series.end)
    cell_cost = series.integral(clipped[:-1], clipped[1:])
    chunk_cost = series.integral(clipped[: cells + 1 - least], clipped[least:]) if least <= cells else np.zeros(0)
    inf = math.inf
    off = np.full((cells + 1, need + 1), inf)
    on = np.full((cells + 1, need + 1), inf)
    off_from_on = np.zeros((cells + 1, need + 1), dtype=bool)  # off[i+1] came from on[i] (a chunk ended)
    on_opened = np.zeros((cells + 1, need + 1), dtype=bool)  # on[j] came from opening a chunk at j - least
    off[0, 0] = 0.0
    for i in range(cells):
        stay_off, end_chunk = off[i], on[i]
        off[i + 1] = np.minimum(stay_off, end_chunk)
        off_from_on[i + 1] = end_chunk < stay_off
        extended = np.full(need + 1, inf)
        extended[1:] = on[i, :-1] + cell_cost[i]
        better = extended < on[i + 1]
        on[i + 1] = np.where(better, extended, on[i + 1])
        on_opened[i + 1] &= ~better
        if i + least <= cells and least <= need:
            opened = np.full(need + 1, inf)
            opened[least:] = off[i, : need + 1 - least] + chunk_cost[i]
            better = opened < on[i + least]
            on[i + least] = np.where(better, opened, on[i + least])
            on_opened[i + least] |= better
    # The earliest finish among the cheapest plans: once k = need, later cells only stay off.
    end = first_least(on[:, need])
    stretch: list[tuple[float, float]] = []
    i, k, state = end, need, "on"
    while i > 0:
        if state == "off":
            state = "on" if off_from_on[i, k] else "off"
            i -= 1
        elif on_opened[i, k]:
            stretch.append((edges[i - least], edges[i]))
            i, k, state = i - least, k - least, "off"
        else:
            stretch.append((edges[i - 1], edges[i]))
            i, k = i - 1, k - 1
    return _merge(series, stretch)


def cheapest_location(plans: Sequence[Plan]) -> int:
    """Index of the plan with the lowest expected emissions for the same job (the first among equals).

    The job's energy is the same wherever it runs, so expected emissions rank as mean intensity x duration.
    """
    return first_least([plan.expected_mean_intensity * plan.duration for plan in plans])
