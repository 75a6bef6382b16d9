"""Intervals for paired measurements: a mean, and a ratio of two paired means (Fieller), with Student's t.

Pure and vectorised: every function works along the last axis, so many synthetic experiments are checked at once.
Each measured round holds one burst of every configuration; rounds are the independent units, and a ratio is
formed from the same rounds of both configurations, so what a round shares (the machine's load, heat and clock
speed at the time) cancels out of it.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

LEVEL = 0.95
LESS, MORE, NO_DIFFERENCE = "less", "more", "no measurable difference"
RATIO_METHOD = (
    "Fieller's interval for the ratio of two paired means (Student's t, rounds - 1 degrees of freedom): "
    "the ratios R for which the mean of (optimized - R x baseline) over rounds is within its t interval of zero"
)
MEAN_METHOD = "mean over rounds +- Student's t x standard error"


def t_quantile(probability: float, df: np.ndarray | int) -> np.ndarray:
    """Student's t quantile by its Cornish-Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5).

    Within 0.004 of the exact value for df >= 3 at the 97.5 % point (3.179 for 3.182; 2.2621 for 2.2622 at 9).
    """
    z = NormalDist().inv_cdf(probability)
    v = np.asarray(df, dtype=float)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


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
