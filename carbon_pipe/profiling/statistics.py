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
    low, high = _fieller(mx, my, sxx, syy, sxy, t_quantile(0.5 + level / 2, n - 1) ** 2 / n)
    return mx / my, low, high


def _fieller(mx, my, sxx, syy, sxy, q) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's bounds from the pairs' means, (co)variances and q = t^2 / n: the roots of the quadratic in R."""
    a = my**2 - q * syy
    b = mx * my - q * sxy
    c = mx**2 - q * sxx
    bounded = a > 0
    root = np.sqrt(np.clip(b**2 - a * c, 0, None))
    safe_a = np.where(bounded, a, 1.0)
    return np.where(bounded, (b - root) / safe_a, -np.inf), np.where(bounded, (b + root) / safe_a, np.inf)


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
# wide enough that all looks together hold their 95 %, so a boundary crossed at any look is a verdict at 5 %. Where
# the profile stopped, the interval reported is the one under the stage-wise ordering (interval_at_stop).
FIRST_LOOK = 3  # processes: two degrees of freedom, the fewest a t interval across processes is of any use with
SEQUENTIAL_METHOD = (
    "stage-wise interval at the stop (Tsiatis, Rosner & Mehta 1984) for the ratio of two paired means across fresh "
    "worker processes (each process's mean over its rounds is one pair), its tail shares simulated for an estimated "
    "variance; Fieller's interval (Student's t, processes - 1 degrees of freedom) at a stop on the first look; the "
    "verdict is the crossing of Pocock's group-sequential boundary at the looks after each process from the third on"
)
STAGEWISE_PATHS = 10000  # simulated profiles per candidate ratio: the p-value's standard error near 2.5 % is 0.16 %
STAGEWISE_SEED = 18  # fixed: the same burst table always gives the same interval


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
UNDER_WAY = "under way"  # a spread profile between two of its processes (train-optimized's resume folder only)


def affordable_processes(most: int, first_cost: float, budget: float) -> int:
    """The processes to plan for, fixed after the first one, before any look: as many as the budget pays for at the
    first one's cost, at most `most` and at least the first look's. Looks the budget could never reach would only
    widen every interval (each look's level is corrected for all the planned ones)."""
    if first_cost <= 0:
        return most
    return max(FIRST_LOOK, min(most, int(budget // first_cost)))


def stop_reason(
    processes: int, planned: int, intervals: list[tuple[float, float]], within: float, spent: float,
    next_cost: float, budget: float,
) -> str | None:
    """Whether to stop after `processes` of `planned` worker processes, and why: every ratio's interval settled (from
    the first look on), the next process expected to overrun the budget (`next_cost`: the profile charges the
    costliest process so far, since one priced at the mean overruns the budget whenever it costs more than the mean
    and is the last to fit; the first look's processes run whatever they cost, with fewer there is no interval), or
    the last planned one done.
    None: go on."""
    if processes >= FIRST_LOOK and all(settled(low, high, within) for low, high in intervals):
        return SETTLED
    if processes >= planned:
        return PLANNED
    if processes >= FIRST_LOOK and spent + next_cost > budget:
        return BUDGET
    return None


def _t_of_difference(x: np.ndarray, y: np.ndarray) -> float:
    difference = x - y
    return float(difference.mean() / np.sqrt(difference.var(ddof=1) / len(difference)))


class _Design:
    """Profiles simulated like the observed one, for the stage-wise p-value of any candidate ratio.

    Each simulated profile draws its own covariance of the pairs from the inverse Wishart law the observed pairs
    leave (processes - 1 degrees of freedom: how little a few processes tell of their spread), then its processes'
    pairs from the normal law with that covariance and the baseline's observed mean, the candidate's mean `ratio`
    times it. The draws are fixed (STAGEWISE_SEED) and shifted per candidate, so the p-value is a deterministic
    function of the ratio. Each simulated profile runs the stop rule at every look before the observed stop: it ends
    where its interval at Pocock's level is clear of 1 (a verdict) or inside 1 +- within (settled, no difference).
    With a known variance the looks' joint law is normal and Armitage, McPherson and Rowe's recursion gives these
    shares exactly; with the few processes a profile has, the variance is estimated at each look and the boundary is
    on Student's t, whose power under a true difference the normal law overstates badly (two degrees of freedom at
    the first look), so the shares are simulated instead.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, first_look: int, planned: int, within: float, level: float):
        self.x, self.within, self.base = x, within, y.mean()
        k = len(x)
        self.looks = range(first_look, k + 1)
        level = sequential_level(first_look, planned, level)
        self.q = {look: t_quantile(0.5 + level / 2, look - 1) ** 2 / look for look in self.looks}
        rng = np.random.default_rng(STAGEWISE_SEED)
        # Inverse Wishart with k - 1 degrees of freedom and scale (k - 1) x the sample covariance: the inverse of
        # the scatter of k - 1 normal draws whose covariance is the scale's inverse (Bartlett, without the triangle).
        scale = (k - 1) * np.cov(x, y)
        scale += 1e-12 * np.trace(scale) * np.eye(2)  # identical pairs in every process: still a covariance
        draws = rng.standard_normal((STAGEWISE_PATHS, k - 1, 2)) @ np.linalg.cholesky(np.linalg.inv(scale)).T
        roots = np.linalg.cholesky(np.linalg.inv(np.einsum("pmi,pmj->pij", draws, draws)))
        noise = np.einsum("pij,pkj->pki", roots, rng.standard_normal((STAGEWISE_PATHS, k, 2)))
        count = np.arange(1, k + 1)[:, None]
        self.mean_x, self.mean_y = (np.cumsum(noise[..., i], axis=1) / count.T for i in (0, 1))
        self.sxx, self.syy, self.sxy = (
            (np.cumsum(noise[..., i] * noise[..., j], axis=1) - count.T * mean_i * mean_j) / np.maximum(count.T - 1, 1)
            for i, j, mean_i, mean_j in ((0, 0, self.mean_x, self.mean_x), (1, 1, self.mean_y, self.mean_y),
                                         (0, 1, self.mean_x, self.mean_y))
        )

        # Student's t of mean(x - y) at each look, the observed profile's and the simulated ones' but for their means
        self.observed_t = {look: _t_of_difference(x[:look], y[:look]) for look in self.looks}
        self.observed_ratio = {look: x[:look].mean() / y[:look].mean() for look in self.looks}
        self.difference_se = np.sqrt(np.clip(self.sxx - 2 * self.sxy + self.syy, 1e-300, None) / count.T)

    def tail(self, ratio: float) -> float:
        """The share of simulated profiles at or above the observed one in the stage-wise ordering, if the true ratio
        were `ratio`. Two profiles are compared at the earlier of their stops by Student's t of the difference from
        1, the statistic the boundary is on: a simulated profile that stopped at an earlier look ranks above the
        observed one where its t there is larger (every one that crossed the upper boundary does, none that crossed
        the lower; one settled inside the margin where its ratio is larger), and one that reached the observed look
        where its t at that look is larger."""
        k = len(self.x)
        alive = np.ones(STAGEWISE_PATHS, dtype=bool)
        above = 0
        for look in self.looks:
            i = look - 1
            mx, my = ratio * self.base + self.mean_x[:, i], self.base + self.mean_y[:, i]
            higher = (mx - my) / self.difference_se[:, i] > self.observed_t[look]
            if look == k:
                return (above + np.count_nonzero(alive & higher)) / STAGEWISE_PATHS
            low, high = _fieller(mx, my, self.sxx[:, i], self.syy[:, i], self.sxy[:, i], self.q[look])
            up, down = alive & (low > 1), alive & (high < 1)
            inside = alive & ~up & ~down & (low >= 1 - self.within) & (high <= 1 + self.within)
            above += np.count_nonzero(up) + np.count_nonzero(inside & (mx / my > self.observed_ratio[look]))
            alive &= ~(up | down | inside)
        raise AssertionError("unreachable: the last look returns")


def _root(function, start: float, stride: float) -> float:
    """Where an increasing `function` of the ratio crosses zero: from `start`, strides doubling each time, down
    while it is above zero, else up, until the sign changes; then Brent's method between the last two."""
    from scipy.optimize import brentq

    stride = -stride if function(start) > 0 else stride
    end = start + stride
    for _ in range(60):
        if np.sign(function(end)) != np.sign(function(start)):
            break
        start, stride = end, 2 * stride
        end = start + stride
    return float(brentq(function, min(start, end), max(start, end), xtol=1e-4))


def stagewise_ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, first_look: int, planned: int, within: float,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """(estimate, low, high) of the ratio where the profile stopped, after len(numerator) processes: the interval
    under the stage-wise ordering (Tsiatis, Rosner & Mehta 1984; Jennison & Turnbull 2000, 8.4) for looks after
    first_look .. planned processes at Pocock's boundary, settling inside 1 +- within. Every ratio whose p-value in
    that ordering is within (1 - level) / 2 of neither end is in it; the p-values come from profiles simulated like
    the observed one (_Design). At a stop on the first look it is the fixed-sample interval (Fieller's), as the
    stage-wise ordering gives with a known variance: only first-look outcomes rank above or below such a stop."""
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    estimate, low, high = (float(value) for value in ratio_interval(x, y, level))
    if len(x) <= first_look or not (np.isfinite(low) and np.isfinite(high)) or low == high:
        return estimate, low, high
    if min(np.std(x[:look] - y[:look]) for look in range(first_look, len(x) + 1)) == 0:
        return estimate, low, high  # the same difference in every process: no t to rank profiles by
    design = _Design(x, y, first_look, planned, within, level)
    width = high - low
    return (
        estimate,
        _root(lambda ratio: design.tail(ratio) - (1 - level) / 2, low, width),
        _root(lambda ratio: design.tail(ratio) - (1 + level) / 2, high, width),
    )


def interval_at_stop(
    numerator: np.ndarray, denominator: np.ndarray, first_look: int, planned: int, within: float,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """(estimate, low, high) reported where the profile stopped, agreeing with its verdict.

    The verdict is the boundary crossing the stop rule uses (the repeated interval at Pocock's level clear of 1), a
    test of "no difference" at 5 % over all looks. The interval is the stage-wise one, except where it disagrees:
    - stopped without crossing (settled inside the margin, budget spent, every process run): that test keeps 1, so
      the interval is widened to hold 1, the smallest interval holding both;
    - crossed, yet the stage-wise interval reaches across 1 (its simulated tail at 1 is near 2.5 %, within the
      simulation's error and what an estimated variance leaves of the boundary's own 2.5 %): its end on the far
      side of 1 is replaced by the repeated interval's, the one the verdict rests on.
    """
    x, y = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    estimate, repeated_low, repeated_high = (
        float(value) for value in ratio_interval(x, y, sequential_level(first_look, planned, level))
    )
    crossed = verdict(repeated_low, repeated_high)
    _, low, high = stagewise_ratio_interval(x, y, first_look, planned, within, level)
    if crossed == MORE and low <= 1:
        return estimate, repeated_low, high if high > repeated_low else repeated_high
    if crossed == LESS and high >= 1:
        return estimate, low if low < repeated_high else repeated_low, repeated_high
    if crossed == NO_DIFFERENCE:
        return estimate, min(low, 1.0), max(high, 1.0)
    return estimate, low, high
