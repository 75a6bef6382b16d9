"""The joint plan as a time-indexed integer programme, solved by HiGHS through scipy.optimize.milp. Pure.

Time from `now` to the last deadline (or the series' end) is cut into cells on a grid aligned with the series.
A job that runs whole has one binary per allowed start: the grid's edges in its window, its earliest and latest
start and the edges minus its duration (so a run may end on an edge); choosing one costs power x the integral of
intensity over the run, exactly. An interruptible job has one binary per cell of its window and runs whole cells
adding up to at least its duration; with a chunk floor (`min_chunk`), a chunk that begins in a cell holds the cells
that follow until it is at least that long (the chunks are then cut to the duration from the last, none below the
floor unless every chunk is at it). Per cell, the jobs holding it (a run holds every cell it touches) number at
most the workers. Minimising the sum is exact on the grid.

Beyond MAX_EXACT_VARIABLES binaries, or when HiGHS cannot prove the optimum within EXACT_SECONDS, the plan is a
heuristic (see `_rounded`) labelled as such, with the bound it is measured against.

A hedged job (joint.Hedge) pays, at every start but its reference, its weight x what its cost on the pessimistic
series exceeds its ceiling by, on top of its expected cost: it moves only where the saving outweighs what the
forecast's error could cost, or where capacity leaves no better choice. The programme's objective and bound then
include those penalties; joint.plan_jobs reports the expected grams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import FieldError
from ..intensity.series import IntensitySeries

if TYPE_CHECKING:
    from .joint import Hedge, QueuedJob

EPS = 1e-6  # seconds: times this close are the same instant
MAX_EXACT_VARIABLES = 20_000
EXACT_GAP = 1e-7  # HiGHS's relative gap for a plan called exact: float rounding, no more
EXACT_SECONDS = 10.0  # past this, HiGHS's best plan so far (or, with none, the heuristic) with its bound
INFEASIBLE = 2  # scipy's milp status
HEURISTIC_GAP = 0.005
HEURISTIC_SECONDS = 20.0
ROUNDING_TOLERANCE = 1e-6  # a relaxed value this close to 0 or 1 is whole


@dataclass(frozen=True)
class Solution:
    spans: list[list[tuple[float, float]]]  # per job, the [start, end) it runs
    exact: bool
    bound_g: float  # the solver's lower bound on the total
    objective_g: float  # the programme's total for the plan chosen (with hedges, penalties included)


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
    floors: np.ndarray  # rows (begins, before or -1, held): a chunk begun in `begins` holds `held` too


def solve(
    jobs: Sequence["QueuedJob"], series: IntensitySeries, workers: int, now: float, step: float,
    hedges: Sequence["Hedge | None"] | None = None, pessimistic: IntensitySeries | None = None,
) -> Solution:  # fmt: skip
    model = build(jobs, series, now, step, hedges, pessimistic)
    capacity = np.full(len(model.edges) - 1, workers)
    exact, chosen, bound = len(model.cost) <= MAX_EXACT_VARIABLES, None, np.nan
    if exact:
        chosen, bound, status = _integer(_problem(model, capacity, np.arange(len(jobs))), exact=True)
        if chosen is None and status == INFEASIBLE:
            _raise_culprit(jobs, model, workers, status, relaxed=False)
        exact = status == 0
    if not exact:  # too large, or out of time: the heuristic, or HiGHS's best plan so far if that is better
        rounded, lp_bound = _rounded(jobs, model, capacity)
        if chosen is None or model.cost[rounded].sum() < model.cost[chosen].sum():
            chosen = rounded
        bound = lp_bound if not np.isfinite(bound) else max(bound, lp_bound)
    spans: list[list[tuple[float, float]]] = [[] for _ in jobs]
    for v in np.flatnonzero(chosen):
        spans[model.job[v]].append((float(model.start[v]), float(model.end[v])))
    for j, job in enumerate(jobs):
        if job.interruptible:
            spans[j] = _trim(sorted(spans[j]), job.duration, min(job.min_chunk, job.duration))
    return Solution(spans, exact, bound, float(model.cost[chosen].sum()))


def _rounded(jobs: Sequence["QueuedJob"], model: Model, capacity: np.ndarray) -> tuple[np.ndarray, float]:
    """Too large to prove: solve the relaxation (its optimum is the bound) and keep the jobs it already places
    whole. The rest go, one at a time by deadline, where the relaxation put most of them and capacity is left,
    else at their cheapest free start; should one not fit, HiGHS places them all in the capacity left, and at last
    all jobs at once, within HEURISTIC_GAP or HEURISTIC_SECONDS."""
    everyone = np.arange(len(jobs))
    x, bound = _relaxation(_problem(model, capacity, everyone))
    if x is None:
        _raise_culprit(jobs, model, int(capacity[0]), INFEASIBLE, relaxed=True)
    split = (x > ROUNDING_TOLERANCE) & (x < 1 - ROUNDING_TOLERANCE)
    undecided = np.unique(model.job[split])
    fixed = (x > 0.5) & ~np.isin(model.job, undecided)
    left = capacity - np.bincount(model.cells[fixed[model.cells[:, 0]], 1], minlength=len(capacity))
    by_deadline = sorted(undecided, key=lambda j: (jobs[j].deadline, j))
    placed = _place_in_turn(model, x, by_deadline, left)
    if placed is not None:
        return fixed | placed, bound
    for free, keep, base in ((left, undecided, fixed), (capacity, everyone, np.zeros_like(fixed))):
        rest, _, _ = _integer(_problem(model, free, keep), exact=False)
        if rest is not None:
            return base | rest, bound
    raise FieldError("jobs", f"no plan found for {len(jobs)} jobs within the solver's limits")


def _place_in_turn(model: Model, x: np.ndarray, order: Sequence[int], left: np.ndarray) -> np.ndarray | None:
    """Each job in turn on its free variables, those the relaxation weighted most first, then the cheapest; None
    when one finds no room."""
    left = left.copy()
    chosen = np.zeros(len(model.cost), dtype=bool)
    job_from = np.searchsorted(model.job, np.arange(len(model.need) + 1))  # variables are built job by job
    cell_from = np.searchsorted(model.cells[:, 0], np.arange(len(model.cost) + 1))
    if np.isin(order, model.job[model.floors[:, 0]]).any():
        return None  # one by one would ignore a chunk floor: HiGHS places the rest, floors kept
    for j in order:
        variables = np.arange(job_from[j], job_from[j + 1])
        wanted = model.need[j]
        for v in variables[np.lexsort((model.cost[variables], -x[variables]))]:
            held = model.cells[cell_from[v] : cell_from[v + 1], 1]
            if np.all(left[held] > 0):
                chosen[v], left[held] = True, left[held] - 1
                wanted -= model.end[v] - model.start[v] if model.interruptible[j] else 1.0
                if wanted <= EPS:
                    break
        if wanted > EPS:
            return None
    return chosen


def grid_edges(series: IntensitySeries, now: float, end: float, step: float) -> np.ndarray:
    """`now`, the points k x step after the series' start inside (now, end), and `end`."""
    first = series.start + np.ceil((now - series.start) / step - EPS) * step
    inner = np.arange(first, end - EPS, step)
    return np.unique(np.concatenate([[now], inner[inner > now + EPS], [end]]))


def build(
    jobs: Sequence["QueuedJob"], series: IntensitySeries, now: float, step: float,
    hedges: Sequence["Hedge | None"] | None = None, pessimistic: IntensitySeries | None = None,
) -> Model:  # fmt: skip
    horizon = min(max(job.deadline for job in jobs), series.end)
    edges = grid_edges(series, now, horizon, step)
    hedges = hedges if hedges is not None else [None] * len(jobs)
    parts = [
        _whole(job, series, now, edges, hedge) if not job.interruptible else _cells(job, now, edges)
        for job, hedge in zip(jobs, hedges)
    ]  # fmt: skip
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    job = np.concatenate([np.full(len(p[0]), j) for j, p in enumerate(parts)])
    power = np.array([j.power_kw for j in jobs])[job]
    cost = power * series.integral(starts, ends) / 3600.0
    if pessimistic is not None:
        cost = cost + np.concatenate([_penalty(jobs[j], *p, hedges[j], pessimistic) for j, p in enumerate(parts)])
    first = np.searchsorted(edges, starts + EPS, side="right") - 1
    last = np.searchsorted(edges, ends - EPS, side="left") - 1
    counts = last - first + 1
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cells = np.stack([np.repeat(np.arange(len(starts)), counts), np.repeat(first, counts) + offsets], axis=1)
    interruptible = np.array([j.interruptible for j in jobs])
    need = np.where(interruptible, [j.duration for j in jobs], 1.0)
    offset = np.cumsum([0] + [len(p[0]) for p in parts])
    floors = [_floor(jobs[j], *p, offset[j]) for j, p in enumerate(parts) if jobs[j].interruptible]
    floors = np.concatenate(floors) if floors else np.empty((0, 3), dtype=np.int64)
    return Model(cost, job, starts, ends, cells, edges, need, interruptible, floors)


def _floor(job: "QueuedJob", starts: np.ndarray, ends: np.ndarray, offset: int) -> np.ndarray:
    """The chunk floor's rows for an interruptible job's cells (variables from `offset`): a chunk begun in a cell
    (the cell before it not run, or not adjacent) holds every later cell until the floor is reached; one that cannot
    reach it before the window ends cannot begin there."""
    rows = []
    floor = min(job.min_chunk, job.duration)
    for i in range(len(starts) if floor > EPS else 0):
        before = offset + i - 1 if i and abs(ends[i - 1] - starts[i]) < EPS else -1
        k = i
        while ends[k] - starts[i] < floor - EPS:  # the chunk through cell k is short of the floor: k + 1 too
            k += 1
            if k == len(starts) or abs(ends[k - 1] - starts[k]) > EPS:
                rows.append((offset + i, before, -1))
                break
            rows.append((offset + i, before, offset + k))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _whole(
    job: "QueuedJob", series: IntensitySeries, now: float, edges: np.ndarray, hedge: "Hedge | None" = None
) -> tuple[np.ndarray, np.ndarray]:
    earliest = max(job.arrival, now)
    latest = min(job.deadline, series.end) - job.duration
    reference = [] if hedge is None or hedge.reference < earliest - EPS else [hedge.reference]
    candidates = np.concatenate([[earliest, latest], reference, edges, edges - job.duration])
    inside = candidates[(candidates >= earliest - EPS) & (candidates <= latest + EPS)]
    starts = np.unique(np.clip(np.round(inside, 6), earliest, latest))
    return starts, starts + job.duration


def _penalty(
    job: "QueuedJob", starts: np.ndarray, ends: np.ndarray, hedge: "Hedge | None", pessimistic: IntensitySeries
) -> np.ndarray:
    """Grams added to each start of a hedged whole job: its weight x by how much it may emit more than its ceiling,
    on the pessimistic series (0 at the reference, and where it is surely no dirtier)."""
    if hedge is None or job.interruptible:
        return np.zeros(len(starts))
    grams = job.power_kw * pessimistic.integral(starts, ends) / 3600.0
    excess = hedge.weight * np.maximum(grams - hedge.ceiling_g, 0.0)
    return np.where(np.abs(starts - hedge.reference) < EPS, 0.0, excess)


def _cells(job: "QueuedJob", now: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    earliest = max(job.arrival, now)
    inside = (edges[:-1] >= earliest - EPS) & (edges[1:] <= job.deadline + EPS)
    if (edges[1:] - edges[:-1])[inside].sum() < job.duration - EPS:
        raise FieldError(
            f"job {job.name}", "its window holds too few whole grid cells for its duration; use a finer step"
        )
    return edges[:-1][inside], edges[1:][inside]


@dataclass(frozen=True)
class Problem:
    """The programme for some of the jobs: one column per variable in `variables`, rows lower <= A x <= upper."""

    variables: np.ndarray  # indices into the model's variables
    cost: np.ndarray
    matrix: object  # scipy.sparse CSR: each job's assignment row, then the crowded cells' capacity rows
    lower: np.ndarray
    upper: np.ndarray
    size: int  # variables in the whole model


def _problem(model: Model, capacity: np.ndarray, keep: np.ndarray, allowed: np.ndarray | None = None) -> Problem:
    """The jobs in `keep` (sorted indices), with `capacity` workers free in each cell, using only the `allowed`
    variables (default: all of theirs)."""
    from scipy.sparse import coo_matrix, vstack

    used = np.isin(model.job, keep) & (True if allowed is None else allowed)
    variables = np.flatnonzero(used)
    index = np.full(len(model.cost), -1)
    index[variables] = np.arange(len(variables))
    rows = np.searchsorted(keep, model.job[variables])
    stretch = model.interruptible[model.job[variables]]
    width = np.where(stretch, model.end[variables] - model.start[variables], 1.0)
    assign = coo_matrix((width, (rows, np.arange(len(variables)))), shape=(len(keep), len(variables)))
    lower = model.need[keep] - EPS * model.interruptible[keep]
    upper = np.where(model.interruptible[keep], np.inf, 1.0)
    pairs = model.cells[used[model.cells[:, 0]]]
    # Rows only for cells where more jobs could run than there are workers free: the others cannot bind.
    holders = np.unique(np.stack([pairs[:, 1], model.job[pairs[:, 0]]], axis=1), axis=0)
    cells, crowd = np.unique(holders[:, 0], return_counts=True)
    crowded = cells[crowd > capacity[cells]]
    pairs = pairs[np.isin(pairs[:, 1], crowded)]
    rows = np.searchsorted(crowded, pairs[:, 1])
    limits = coo_matrix((np.ones(len(pairs)), (rows, index[pairs[:, 0]])), shape=(len(crowded), len(variables)))
    floors = _floor_rows(model, index, used)
    matrix = vstack([assign, limits, floors]).tocsr()
    lower = np.concatenate([lower, np.full(len(crowded) + floors.shape[0], -np.inf)])
    upper = np.concatenate([upper, capacity[crowded], np.zeros(floors.shape[0])])
    return Problem(variables, model.cost[variables], matrix, lower, upper, len(model.cost))


def _floor_rows(model: Model, index: np.ndarray, used: np.ndarray):
    """x[begins] - x[before] - x[held] <= 0 per floor row of the variables used (a missing one counts 0)."""
    from scipy.sparse import coo_matrix

    rows = model.floors[used[model.floors[:, 0]]]
    data, row_of, column = [], [], []
    for r, (begins, before, held) in enumerate(rows):
        for variable, sign in ((begins, 1.0), (before, -1.0), (held, -1.0)):
            if variable >= 0 and used[variable]:
                data.append(sign), row_of.append(r), column.append(index[variable])
    return coo_matrix((data, (row_of, column)), shape=(len(rows), int(used.sum())))


def _integer(problem: Problem, exact: bool, feasibility: bool = False) -> tuple[np.ndarray | None, float, int]:
    """(chosen variables of the whole model or None, HiGHS's lower bound, its status: 0 proven, 1 out of time)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    cost = np.zeros(len(problem.cost)) if feasibility else problem.cost
    options = {"mip_rel_gap": EXACT_GAP, "time_limit": EXACT_SECONDS} if exact else {
        "mip_rel_gap": HEURISTIC_GAP, "time_limit": HEURISTIC_SECONDS
    }
    constraint = LinearConstraint(problem.matrix, problem.lower, problem.upper)
    result = milp(cost, integrality=np.ones(len(cost)), bounds=Bounds(0, 1), constraints=constraint, options=options)
    if result.x is None:
        return None, np.nan, result.status
    chosen = np.zeros(problem.size, dtype=bool)
    chosen[problem.variables] = result.x > 0.5
    bound = getattr(result, "mip_dual_bound", None)
    return chosen, float(result.fun if bound is None or not np.isfinite(bound) else bound), result.status


def _relaxation(problem: Problem, feasibility: bool = False) -> tuple[np.ndarray | None, float]:
    """The linear relaxation by HiGHS's interior point method (the fastest of its LP methods on these)."""
    from scipy.optimize import linprog
    from scipy.sparse import vstack

    equal = problem.lower == problem.upper
    below = np.isfinite(problem.upper) & ~equal
    above = np.isfinite(problem.lower) & ~equal
    a_ub = vstack([problem.matrix[below], -problem.matrix[above]])
    b_ub = np.concatenate([problem.upper[below], -problem.lower[above]])
    cost = np.zeros(len(problem.cost)) if feasibility else problem.cost
    result = linprog(
        cost, A_ub=a_ub, b_ub=b_ub, A_eq=problem.matrix[equal], b_eq=problem.lower[equal], bounds=(0, 1),
        method="highs-ipm",
    )  # fmt: skip
    if result.x is None:
        return None, float("nan")
    x = np.zeros(problem.size)
    x[problem.variables] = result.x
    return x, float(result.fun)


def _trim(spans: list[tuple[float, float]], duration: float, floor: float = 0.0) -> list[tuple[float, float]]:
    """Whole cells may add up to more than the duration: the chunks are cut short from the last, none below the
    chunk floor where that is enough, so the job runs its duration."""
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and abs(merged[-1][1] - start) < EPS:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    excess = sum(end - start for start, end in merged) - duration
    for least in (floor, 0.0):  # where every chunk is at the floor, the last ends short: the work is done
        for chunk in reversed(merged):
            cut = min(excess, max(chunk[1] - chunk[0] - least, 0.0)) if chunk[1] - chunk[0] > excess + EPS else excess
            chunk[1] -= cut
            excess -= cut
    return [(start, end) for start, end in merged if end > start + EPS]


def _raise_culprit(jobs: Sequence["QueuedJob"], model: Model, workers: int, status: int, relaxed: bool) -> None:
    """No plan: name the first job, by deadline, that the workers cannot fit beside those due before it (judged by
    the relaxation when the programme is too large to prove: a job that does not fit there does not fit at all)."""
    if status != INFEASIBLE:  # not proven infeasible: a limit stopped the search before a plan was found
        raise FieldError("jobs", f"no plan found for {len(jobs)} jobs within the solver's limits")
    capacity = np.full(len(model.edges) - 1, workers)
    order = np.array(sorted(range(len(jobs)), key=lambda j: (jobs[j].deadline, j)))
    low, high = 1, len(order)  # the shortest prefix that does not fit lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        problem = _problem(model, capacity, np.sort(order[:middle]))
        fits = (_relaxation(problem, True) if relaxed else _integer(problem, True, feasibility=True))[0] is not None
        low, high = (middle + 1, high) if fits else (low, middle)
    culprit = jobs[order[low - 1]]
    raise FieldError(
        f"job {culprit.name}",
        f"{workers} worker{'s' if workers > 1 else ''} cannot fit it by its deadline beside the jobs due before it",
    )
