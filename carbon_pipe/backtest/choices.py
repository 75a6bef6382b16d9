"""Choosing by a belief: the best single window, or the cheapest chunks, for a block of jobs at a time.

Each job's row holds what the policy believes of its points from arrival onwards (`values[j, k]` for point
arrival + k); NaN, inf or anything past the job's deadline is unknown and never chosen. A job whose belief
cannot place it runs at arrival. Ties in belief go to the earliest start (single windows), the earliest points
(no minimum chunk), or the plan that skips later points (chunks), so results do not depend on blocking.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DP_CELLS = 1 << 22  # points x jobs x taken-counts per block of the chunk programme: its decision bits stay small


def best_windows(values: np.ndarray, run: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """Offset of the lowest window sum per job among starts 0..slack[j] (earliest of equals); 0 when none is known."""
    jobs, points = values.shape
    unknown = ~np.isfinite(values)
    sums = np.concatenate([np.zeros((jobs, 1)), np.cumsum(np.where(unknown, 0.0, values), axis=1)], axis=1)
    counts = np.concatenate([np.zeros((jobs, 1), dtype=np.int64), np.cumsum(unknown, axis=1)], axis=1)
    starts = np.arange(int(slack.max()) + 1)
    ends = np.minimum(starts + run[:, None], points)
    total = np.take_along_axis(sums, ends, axis=1) - sums[:, : len(starts)]
    bad = (np.take_along_axis(counts, ends, axis=1) - counts[:, : len(starts)] > 0) | (starts > slack[:, None])
    return np.argmin(np.where(bad, np.inf, total), axis=1)


def cheapest_points(
    values: np.ndarray, run: np.ndarray, slack: np.ndarray, splittable: np.ndarray, min_chunk: int
) -> np.ndarray:
    """(jobs, points) mask of the points each job runs: `run[j]` of them before its deadline, in chunks of at
    least `min_chunk` points where splittable[j], in one piece otherwise."""
    jobs, points = values.shape
    beyond = np.arange(points) >= (run + slack)[:, None]
    plan = np.where(np.isfinite(values) & ~beyond, values, np.inf)
    mask = np.zeros((jobs, points), dtype=bool)
    whole = ~splittable | (run <= min_chunk)
    if whole.any():
        offset = best_windows(np.where(beyond, np.nan, values)[whole], run[whole], slack[whole])
        k = np.arange(points)
        mask[whole] = (k >= offset[:, None]) & (k < (offset + run[whole])[:, None])
    split = ~whole
    if split.any() and min_chunk <= 1:
        ranks = np.argsort(np.argsort(plan[split], axis=1, kind="stable"), axis=1)
        mask[split] = ranks < run[split, None]
    elif split.any():
        mask[split] = _chunk_programme(plan[split], run[split], min_chunk)
    taken = np.where(mask, plan, 0.0).sum(axis=1)
    unplaced = ~np.isfinite(taken)
    mask[unplaced] = np.arange(points) < run[unplaced, None]  # nothing known: run at arrival
    return mask


def _chunk_programme(plan: np.ndarray, run: np.ndarray, min_chunk: int) -> np.ndarray:
    """Cheapest set of run[j] points in chunks of at least m: a dynamic programme over the points in time order.

    With n points taken before point t: `closed[t][n]` is the cheapest plan that may stop there (the last point
    was skipped, or ends a chunk of at least m points), `running[n]` the cheapest whose last point is in a chunk
    of at least m. A chunk either grows by one point or opens as m points at once, so no plan has a short chunk.
    Two decision bits per state let the plan be read back from the end.
    """
    jobs, points = plan.shape
    order = np.lexsort((run,))  # blocks of similar run lengths waste fewer states
    mask = np.zeros_like(plan, dtype=bool)
    per_block = max(1, DP_CELLS // (points * (int(run.max()) + 1)))
    for first in range(0, jobs, per_block):
        chosen = order[first : first + per_block]
        mask[chosen] = _programme_block(plan[chosen], run[chosen], min_chunk)
    return mask


def _programme_block(plan: np.ndarray, run: np.ndarray, m: int) -> np.ndarray:
    jobs, points = plan.shape
    most = int(run.max())
    chunk = sliding_window_view(plan, m, axis=1).sum(axis=2)  # chunk[:, s]: the m points from s
    closed = np.full((m + 1, jobs, most + 1), np.inf)  # closed[t] for the last m + 1 values of t, by t % (m + 1)
    closed[0, :, 0] = 0.0
    running = np.full((jobs, most + 1), np.inf)
    from_running = np.zeros((points, jobs, most + 1), dtype=bool)  # closed[t + 1] ends a chunk at point t
    opened = np.zeros((points, jobs, most + 1), dtype=bool)  # running after t opened a chunk at t + 1 - m
    for t in range(points):
        grown = np.full_like(running, np.inf)
        np.add(running[:, :-1], plan[:, t, None], out=grown[:, 1:])
        if t + 1 >= m:
            fresh = np.full_like(running, np.inf)
            fresh[:, m:] = closed[(t + 1 - m) % (m + 1), :, : most + 1 - m] + chunk[:, t + 1 - m, None]
            np.less(fresh, grown, out=opened[t])  # ties: grow the chunk already running
            grown = np.where(opened[t], fresh, grown)
        running = grown
        before = closed[t % (m + 1)]
        np.less(running, before, out=from_running[t])  # ties: skip the point
        closed[(t + 1) % (m + 1)] = np.where(from_running[t], running, before)
    return _read_back(from_running, opened, run, m)


def _read_back(from_running: np.ndarray, opened: np.ndarray, run: np.ndarray, m: int) -> np.ndarray:
    """The points of each job's optimal plan, walking the decision bits back from (last point, run[j] taken)."""
    points, jobs, _ = from_running.shape
    mask = np.zeros((jobs, points), dtype=bool)
    at = np.full(jobs, points)  # each job's position t: its state is closed[t] or running after t - 1
    is_running = np.zeros(jobs, dtype=bool)
    taken = run.copy()
    rows = np.arange(jobs)
    for t in range(points, 0, -1):
        here = at == t
        closed_here = here & ~is_running
        ended = closed_here & from_running[t - 1, rows, taken]
        is_running |= ended
        at[closed_here & ~ended] = t - 1
        live = here & is_running
        fresh = live & opened[t - 1, rows, taken]
        grew = live & ~fresh
        mask[grew, t - 1] = True
        for back in range(1, m + 1):
            mask[fresh, t - back] = True
        taken[grew] -= 1
        taken[fresh] -= m
        at[grew] = t - 1
        at[fresh] = t - m
        is_running[fresh] = False
    return mask


def chunks_of(mask: np.ndarray, arrival: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(job row, start point, length) of every maximal run of chosen points, in job then time order."""
    jobs, points = mask.shape
    padded = np.zeros((jobs, points + 2), dtype=bool)
    padded[:, 1:-1] = mask
    starts = padded[:, 1:-1] & ~padded[:, :-2]
    ends = padded[:, 1:-1] & ~padded[:, 2:]
    job, first = np.nonzero(starts)
    _, last = np.nonzero(ends)
    return job, arrival[job] + first, last - first + 1
