"""Pure scheduling maths: give it a series, a time and a job; it touches no network and no clock.

A job of `duration` seconds may start anywhere in [earliest, latest]. Its expected emissions are proportional
to the integral of intensity over the time it runs, so every rule below compares windows by that integral.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .series import IntensitySeries
from .timeutil import format_duration, iso


@dataclass(frozen=True)
class Plan:
    rule: str
    start: float
    duration: float
    expected_mean_intensity: float
    now_mean_intensity: float
    reason: str

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def saving_vs_now_pct(self) -> float:
        if self.now_mean_intensity == 0:
            return 0.0
        return 100.0 * (1.0 - self.expected_mean_intensity / self.now_mean_intensity)


def _latest_feasible(series: IntensitySeries, earliest: float, latest: float, duration: float) -> float:
    if not series.covers(earliest, earliest + duration):
        raise ValueError(
            f"the intensity series ({iso(series.start)} to {iso(series.end)}) does not cover a "
            f"{format_duration(duration)} job starting {iso(earliest)}"
        )
    return min(latest, series.end - duration)


def lowest_mean_start(series: IntensitySeries, earliest: float, latest: float, duration: float) -> Plan:
    """The start in [earliest, latest] with the lowest mean intensity over the job; ties go to the earlier start.

    The integral over [s, s + duration] is piecewise linear in s, with kinks only where s or s + duration
    crosses a point boundary, so its minimum lies at a window edge or at one of those kinks: checking
    them is exact, not a grid search.
    """
    latest = _latest_feasible(series, earliest, latest, duration)
    edges = series.boundaries
    kinks = np.concatenate([edges, edges - duration])
    candidates = np.unique(np.concatenate([[earliest, latest], kinks[(kinks > earliest) & (kinks < latest)]]))
    integrals = series.cumulative(candidates + duration) - series.cumulative(candidates)
    best = int(np.argmin(integrals))  # argmin takes the first, i.e. earliest, of equal minima
    start = float(candidates[best])
    now_mean = series.mean(earliest, earliest + duration)
    mean = float(integrals[best] / duration)
    wait = format_duration(start - earliest)
    return Plan(
        "lowest-mean",
        start,
        duration,
        mean,
        now_mean,
        f"lowest mean intensity over the {format_duration(duration)} job within the allowed delay: "
        f"start after {wait} at {mean:.1f} g/kWh vs {now_mean:.1f} now",
    )


def threshold_start(series: IntensitySeries, earliest: float, latest: float, duration: float, threshold: float) -> Plan:
    """The reference rule done right: start at the first moment intensity <= threshold, else at `latest` (never later)."""
    latest = _latest_feasible(series, earliest, latest, duration)
    if series.at(earliest) <= threshold:
        start, why = earliest, f"intensity {series.at(earliest):.1f} is at or under the threshold {threshold:g} now"
    else:
        later = series.boundaries[:-1][(series.boundaries[:-1] > earliest) & (series.boundaries[:-1] <= latest)]
        under = later[series.values[np.searchsorted(series.boundaries, later, side="right") - 1] <= threshold]
        if len(under):
            start = float(under[0])
            why = f"intensity first falls to {series.at(start):.1f} (threshold {threshold:g}) after {format_duration(start - earliest)}"
        else:
            start = latest
            why = f"intensity stays above the threshold {threshold:g}; starting at the maximum wait"
    return Plan("threshold", start, duration, series.mean(start, start + duration), series.mean(earliest, earliest + duration), why)


def start_now(series: IntensitySeries, earliest: float, duration: float) -> Plan:
    _latest_feasible(series, earliest, earliest, duration)
    mean = series.mean(earliest, earliest + duration)
    return Plan("now", earliest, duration, mean, mean, "scheduler.rule is 'now': no waiting")
