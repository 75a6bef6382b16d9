"""Intervals for paired measurements: a mean, and a ratio of two paired means (Fieller), with Student's t.

Pure and vectorised: every function works along the last axis, so many synthetic experiments are checked at once.
Each measured round holds one burst of every configuration; rounds are the independent units, and a ratio is
formed from the same rounds of both configurations, so what a round shares (the machine's load, heat and clock
speed at the time) cancels out of it.
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

LEVEL = 0.95
LESS, MORE, NO_DIFFERENCE = "less", "more", "no measurable difference"
MEAN_METHOD = "mean over rounds +- Student's t x standard error"


def t_quantile(probability: float, df: np.ndarray | int) -> np.ndarray:
    """Student's t quantile (exact, scipy's inverse of its distribution function; imported here: it is heavy)."""
    from scipy.special import stdtrit

    return stdtrit(np.asarray(df, dtype=float), probability)


def mean_interval(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) along the last axis: the t interval of the mean."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    half = t_quantile(0.5 + level / 2, n - 1) * values.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean(numerator) / mean(denominator), low, high) along the last axis, paired by position (Fieller).

    The interval holds every R with (mean_n - R mean_d)^2 <= t^2 / n * var(n - R d), a quadratic in R. It is exact
    for normally distributed pairs, contains the point estimate, and is unbounded (-inf, inf) when the
    denominator's mean is not clearly away from zero, which energy never is.
    """
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    n = x.shape[-1]
    mx, my = x.mean(axis=-1), y.mean(axis=-1)
    sxx, syy = x.var(axis=-1, ddof=1), y.var(axis=-1, ddof=1)
    sxy = ((x - mx[..., None]) * (y - my[..., None])).sum(axis=-1) / (n - 1)
    q = t_quantile(0.5 + level / 2, n - 1) ** 2 / n
    a = my**2 - q * syy
    b = mx * my - q * sxy
    c = mx**2 - q * sxx
    bounded = a > 0
    root = np.sqrt(np.clip(b**2 - a * c, 0, None))
    safe_a = np.where(bounded, a, 1.0)
    low = np.where(bounded, (b - root) / safe_a, -np.inf)
    high = np.where(bounded, (b + root) / safe_a, np.inf)
    return mx / my, low, high


def verdict(low: float, high: float) -> str:
    """`less` or `more` when the ratio's whole interval is below or above 1, else no measurable difference."""
    if high < 1:
        return LESS
    if low > 1:
        return MORE
    return NO_DIFFERENCE


def within_pct(low: float, high: float) -> tuple[float, float]:
    """A ratio's interval as percentages of the baseline: (-x, +y) for "within -x % / +y %"."""
    return 100 * (low - 1), 100 * (high - 1)


# The sequential stop: the profile looks at its interval after each worker process, from the FIRST_LOOK-th on, and
# stops once the verdict is settled. Each look's interval is a repeated confidence interval (Jennison & Turnbull):
# wide enough that all looks together hold their 95 %, so stopping at whichever look settles it keeps the coverage.
FIRST_LOOK = 3  # processes: two degrees of freedom, the fewest a t interval across processes is of any use with
SEQUENTIAL_METHOD = (
    "Fieller's interval for the ratio of two paired means across fresh worker processes (each process's mean over "
    "its rounds is one pair; Student's t, processes - 1 degrees of freedom), at the nominal level of Pocock's "
    "group-sequential boundary for the planned looks (after each process from the third on), so that the interval "
    "where the profile stopped holds 95 % coverage however many looks it took"
)


def _normal_pdf(x: np.ndarray, variance: float) -> np.ndarray:
    return np.exp(-(x**2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)


def _stays_within(constant: float, looks: tuple[int, ...], step: float) -> float:
    """P(|S_n| <= constant x sqrt(n) at every look n), S_n a sum of n independent standard normals: the density of
    S carried from look to look (Armitage, McPherson and Rowe's recursion) on the midpoints of equal cells that span
    each look's bounds exactly (the midpoint rule: its error falls with the square of the cell)."""
    points, weight = None, 0.0
    for index, look in enumerate(looks):
        bound = constant * np.sqrt(look)
        cells = max(2, int(np.ceil(2 * bound / step)))
        width = 2 * bound / cells
        grid = -bound + width * (np.arange(cells) + 0.5)
        if points is None:
            density = _normal_pdf(grid, look)
        else:
            density = _normal_pdf(grid[:, None] - points[None, :], look - looks[index - 1]) @ (density * weight)
        points, weight = grid, width
    return float(density.sum() * weight)


@lru_cache(maxsize=64)
def pocock_constant(looks: tuple[int, ...], level: float = LEVEL, step: float = 0.05) -> float:
    """Pocock's constant boundary for looks after `looks` units (e.g. (3, 4, 5, 6) processes): the c with
    P(|Z| <= c at every look) = level under no effect, Z the standardised sum at each look. 1.96 for one look."""
    low, high = NormalDist().inv_cdf(0.5 + level / 2) - 0.01, 6.0
    while high - low > 1e-4:
        middle = (low + high) / 2
        low, high = (middle, high) if _stays_within(middle, looks, step) < level else (low, middle)
    return (low + high) / 2


def sequential_level(first_look: int, last_look: int, level: float = LEVEL) -> float:
    """The nominal level of each look's interval when the profile may look after first_look .. last_look processes."""
    looks = tuple(range(first_look, max(first_look, last_look) + 1))
    return 2 * NormalDist().cdf(pocock_constant(looks, level)) - 1


def settled(low: float, high: float, within: float) -> bool:
    """A verdict that more processes would not change: the interval clear of 1 (less or more), or inside
    1 +- within (no difference larger than `within`, a fraction)."""
    return high < 1 or low > 1 or (1 - within <= low and high <= 1 + within)


SETTLED, BUDGET, PLANNED = "settled", "budget spent", "every planned process run"


def stop_reason(
    processes: int, planned: int, intervals: list[tuple[float, float]], within: float, spent: float, budget: float
) -> str | None:
    """Whether to stop after `processes` of `planned` worker processes, and why: every ratio's interval settled (from
    the first look on), the next process expected to overrun the budget (its cost the mean so far; the first looks'
    processes run whatever they cost, with fewer there is no interval), or the last planned one done. None: go on."""
    if processes >= FIRST_LOOK and all(settled(low, high, within) for low, high in intervals):
        return SETTLED
    if processes >= planned:
        return PLANNED
    if processes >= FIRST_LOOK and spent * (processes + 1) / processes > budget:
        return BUDGET
    return None
