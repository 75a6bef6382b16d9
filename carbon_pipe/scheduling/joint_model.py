"""The joint plan as a time-indexed integer programme, solved by HiGHS through scipy.optimize.milp. Pure.

Time from `now` to the last deadline (or the series' end) is cut into cells on a grid aligned with the series.
A job that runs whole has one binary per allowed start: the grid's edges in its window, its earliest and latest
start and the edges minus its duration (so a run may end on an edge); choosing one costs power x the integral of
intensity over the run, exactly. An interruptible job has one binary per cell of its window and runs whole cells
adding up to at least its duration. Per cell, the jobs holding it (a run holds every cell it touches) number at
most the workers. Minimising the sum is exact on the grid.

Beyond MAX_EXACT_VARIABLES binaries, HiGHS is asked for a plan within HEURISTIC_GAP of its bound in at most
HEURISTIC_SECONDS: the plan it returns is labelled a heuristic and carries that bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import FieldError
from ..intensity.series import IntensitySeries

if TYPE_CHECKING:
    from .joint import QueuedJob

EPS = 1e-6  # seconds: times this close are the same instant
MAX_EXACT_VARIABLES = 40_000
EXACT_GAP = 1e-7  # HiGHS's relative gap for a plan called exact: float rounding, no more
HEURISTIC_GAP = 0.005
HEURISTIC_SECONDS = 20.0


@dataclass(frozen=True)
class Solution:
    spans: list[list[tuple[float, float]]]  # per job, the [start, end) it runs
    exact: bool
    bound_g: float  # the solver's lower bound on the total


@dataclass(frozen=True)
class Model:
    cost: np.ndarray  # grams per variable
    job: np.ndarray  # job index per variable
    start: np.ndarray  # when the variable's run (or cell) starts
    end: np.ndarray
    cells: np.ndarray  # (variable, cell) pairs it holds, as two columns
    edges: np.ndarray
    need: np.ndarray  # per job: 1 (one start) or the seconds to run (interruptible)
    interruptible: np.ndarray


def solve(jobs: Sequence["QueuedJob"], series: IntensitySeries, workers: int, now: float, step: float) -> Solution:
    model = build(jobs, series, now, step)
    exact = len(model.cost) <= MAX_EXACT_VARIABLES
    result = _milp(model, workers, np.arange(len(jobs)), exact)
    if result.x is None:
        _raise_culprit(jobs, model, workers, result)
    chosen = np.flatnonzero(result.x > 0.5)
    spans: list[list[tuple[float, float]]] = [[] for _ in jobs]
    for v in chosen:
        spans[model.job[v]].append((float(model.start[v]), float(model.end[v])))
    for j, job in enumerate(jobs):
        if job.interruptible:
            spans[j] = _trim(sorted(spans[j]), job.duration)
    proven = result.status == 0 and exact
    bound = float(getattr(result, "mip_dual_bound", np.nan))
    return Solution(spans, proven, bound if np.isfinite(bound) else float(result.fun))


def grid_edges(series: IntensitySeries, now: float, end: float, step: float) -> np.ndarray:
    """`now`, the points k x step after the series' start inside (now, end), and `end`."""
    first = series.start + np.ceil((now - series.start) / step - EPS) * step
    inner = np.arange(first, end - EPS, step)
    return np.unique(np.concatenate([[now], inner[inner > now + EPS], [end]]))


def build(jobs: Sequence["QueuedJob"], series: IntensitySeries, now: float, step: float) -> Model:
    horizon = min(max(job.deadline for job in jobs), series.end)
    edges = grid_edges(series, now, horizon, step)
    parts = [_whole(job, series, now, edges) if not job.interruptible else _cells(job, now, edges) for job in jobs]
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    job = np.concatenate([np.full(len(p[0]), j) for j, p in enumerate(parts)])
    power = np.array([j.power_kw for j in jobs])[job]
    cost = power * series.integral(starts, ends) / 3600.0
    first = np.searchsorted(edges, starts + EPS, side="right") - 1
    last = np.searchsorted(edges, ends - EPS, side="left") - 1
    counts = last - first + 1
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cells = np.stack([np.repeat(np.arange(len(starts)), counts), np.repeat(first, counts) + offsets], axis=1)
    interruptible = np.array([j.interruptible for j in jobs])
    need = np.where(interruptible, [j.duration for j in jobs], 1.0)
    return Model(cost, job, starts, ends, cells, edges, need, interruptible)


def _whole(job: "QueuedJob", series: IntensitySeries, now: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    earliest = max(job.arrival, now)
    latest = min(job.deadline, series.end) - job.duration
    candidates = np.concatenate([[earliest, latest], edges, edges - job.duration])
    inside = candidates[(candidates >= earliest - EPS) & (candidates <= latest + EPS)]
    starts = np.unique(np.clip(np.round(inside, 6), earliest, latest))
    return starts, starts + job.duration


def _cells(job: "QueuedJob", now: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    earliest = max(job.arrival, now)
    inside = (edges[:-1] >= earliest - EPS) & (edges[1:] <= job.deadline + EPS)
    if (edges[1:] - edges[:-1])[inside].sum() < job.duration - EPS:
        raise FieldError(
            f"job {job.name}", "its window holds too few whole grid cells for its duration; use a finer step"
        )
    return edges[:-1][inside], edges[1:][inside]


def _milp(model: Model, workers: int, keep: np.ndarray, exact: bool, feasibility: bool = False):
    """Solve for the jobs in `keep` (indices): all of them, or a subset when looking for the one that does not fit."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    used = np.isin(model.job, keep)
    variables = np.flatnonzero(used)
    index = np.full(len(model.cost), -1)
    index[variables] = np.arange(len(variables))
    rows = np.searchsorted(keep, model.job[variables])
    width = np.where(model.interruptible[model.job[variables]], model.end[variables] - model.start[variables], 1.0)
    assign = coo_matrix((width, (rows, np.arange(len(variables)))), shape=(len(keep), len(variables)))
    need = model.need[keep]
    constraints = [
        LinearConstraint(assign, need - EPS * model.interruptible[keep], np.where(model.interruptible[keep], np.inf, 1))
    ]
    pairs = model.cells[used[model.cells[:, 0]]]
    capacity = _capacity_rows(pairs, index, model.job, workers, len(variables))
    if capacity is not None:
        constraints.append(capacity)
    cost = np.zeros(len(variables)) if feasibility else model.cost[variables]
    options = {"mip_rel_gap": EXACT_GAP} if exact else {"mip_rel_gap": HEURISTIC_GAP, "time_limit": HEURISTIC_SECONDS}
    result = milp(
        cost, integrality=np.ones(len(variables)), bounds=Bounds(0, 1), constraints=constraints, options=options
    )
    if result.x is not None:
        full = np.zeros(len(model.cost))
        full[variables] = result.x
        result.x = full
    return result


def _capacity_rows(pairs: np.ndarray, index: np.ndarray, job: np.ndarray, workers: int, width: int):
    """Cell rows only where more jobs could be running than there are workers: the others cannot bind."""
    from scipy.optimize import LinearConstraint
    from scipy.sparse import coo_matrix

    if len(pairs) == 0:
        return None
    holders = np.unique(np.stack([pairs[:, 1], job[pairs[:, 0]]], axis=1), axis=0)
    cells, crowd = np.unique(holders[:, 0], return_counts=True)
    crowded = cells[crowd > workers]
    if len(crowded) == 0:
        return None
    pairs = pairs[np.isin(pairs[:, 1], crowded)]
    rows = np.searchsorted(crowded, pairs[:, 1])
    matrix = coo_matrix((np.ones(len(pairs)), (rows, index[pairs[:, 0]])), shape=(len(crowded), width))
    return LinearConstraint(matrix, -np.inf, workers)


def _trim(spans: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Whole cells may add up to more than the duration: the last one is cut short so the job runs its duration."""
    excess = sum(end - start for start, end in spans) - duration
    while excess > EPS:
        start, end = spans.pop()
        cut = min(excess, end - start)
        if end - cut > start + EPS:
            spans.append((start, end - cut))
        excess -= cut
    return spans


def _raise_culprit(jobs: Sequence["QueuedJob"], model: Model, workers: int, result) -> None:
    """No plan: name the first job, by deadline, that the workers cannot fit beside those due before it."""
    if result.status not in (2,):  # not proven infeasible: a time limit with no plan found yet
        raise FieldError("jobs", f"no plan found for {len(jobs)} jobs within the solver's limits ({result.message})")
    order = np.array(sorted(range(len(jobs)), key=lambda j: (jobs[j].deadline, j)))
    low, high = 1, len(order)  # the shortest infeasible prefix lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if _milp(model, workers, np.sort(order[:middle]), True, feasibility=True).x is None:
            high = middle
        else:
            low = middle + 1
    culprit = jobs[order[low - 1]]
    raise FieldError(
        f"job {culprit.name}",
        f"{workers} worker{'s' if workers > 1 else ''} cannot fit it by its deadline beside the jobs due before it",
    )
