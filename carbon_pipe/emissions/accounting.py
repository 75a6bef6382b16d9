"""Pure carbon accounting: energy per interval x grid intensity at that interval's time.

Nothing here reads files or clocks; the stages hand in arrays and a series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..intensity.series import IntensitySeries

# What a run spends energy on (the `phase` of each measured interval): training, the energy profile before it, and
# the hardware held idle through a real-clock pause.
TRAINING, PROFILE, IDLE = "training", "profile", "idle"


def interval_intensity(series: IntensitySeries, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Time-weighted mean intensity over each [start, end] (the value in force for a zero-length interval)."""
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if len(starts) == 0:
        return np.zeros(0)
    if starts.min() < series.start or ends.max() > series.end:
        raise ValueError("the run extends outside the intensity series")
    # Within one point the mean is that point's value; computing it as a difference of two large cumulative
    # integrals over a sub-second span would only add rounding noise.
    last = len(series.values) - 1
    first_point = np.clip(np.searchsorted(series.boundaries, starts, side="right") - 1, 0, last)
    last_point = np.clip(np.searchsorted(series.boundaries, ends, side="left") - 1, 0, last)
    same_point = last_point <= first_point
    spans = np.where(same_point, 1.0, ends - starts)
    integrals = series.cumulative(ends) - series.cumulative(starts)
    return np.where(same_point, series.values[first_point], integrals / spans)


def emissions_kg(energy_kwh: np.ndarray, intensity_g_per_kwh: np.ndarray) -> np.ndarray:
    return np.asarray(energy_kwh, dtype=float) * np.asarray(intensity_g_per_kwh, dtype=float) / 1000.0


def profile_emissions_kg(
    series: IntensitySeries, starts: np.ndarray, ends: np.ndarray, energy_kwh: np.ndarray, shift: float = 0.0
) -> float:
    """Emissions of an energy profile moved by `shift` seconds on the clock."""
    intensity = interval_intensity(series, np.asarray(starts) + shift, np.asarray(ends) + shift)
    return float(emissions_kg(energy_kwh, intensity).sum())


def without_pauses(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The intervals with every stretch in which nothing was measured (a pause) taken out, the first start kept.

    A run that paused between chunks becomes the same run done in one go: its intervals back to back, in order.
    Intervals measured side by side (several nodes) keep their overlap.
    """
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    if len(starts) == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    reached = np.maximum.accumulate(ends[order])  # the latest end measured so far
    gaps = np.maximum(0.0, starts[order][1:] - reached[:-1])
    removed = np.empty_like(starts)
    removed[order] = np.concatenate([[0.0], np.cumsum(gaps)])
    return starts - removed, ends - removed


@dataclass(frozen=True)
class Decomposition:
    """reduction = schedule effect (when its training ran) + configuration effect measured by the two runs (how it
    trained) - what the optimized run spent besides training (its profile, hardware held idle), exactly."""

    baseline_kg: float
    optimized_training_kg: float
    optimized_training_at_baseline_start_kg: float
    overhead_kg: float = 0.0  # the optimized run's profile and held-idle energy, as charged

    @property
    def reduction_kg(self) -> float:
        return self.baseline_kg - self.optimized_training_kg - self.overhead_kg

    @property
    def schedule_effect_kg(self) -> float:
        return self.optimized_training_at_baseline_start_kg - self.optimized_training_kg

    @property
    def configuration_effect_kg(self) -> float:
        return self.baseline_kg - self.optimized_training_at_baseline_start_kg


SECONDS_PER_YEAR = 365 * 24 * 3600  # a year as the SCI specification's worked example counts one


def embodied_share_kg(embodied_kg: float, lifetime_years: float, held_seconds: float, devices: int = 1) -> float:
    """SCI's M = TE x TiR / EL x RR / ToR: the devices' embodied emissions over their lifetime, for the time the run
    held them, each device reserved whole (resource share 1)."""
    return embodied_kg * devices * held_seconds / (lifetime_years * SECONDS_PER_YEAR)


@dataclass(frozen=True)
class SoftwareCarbonIntensity:
    """SCI = (E x I + M) per R (ISO/IEC 21031:2024), R one training run or 1,000 of its training samples."""

    operational_kg: float  # E x I: each measured interval's energy x the grid's intensity then
    embodied_kg: float  # M
    samples: int

    @property
    def per_run_kg(self) -> float:
        return self.operational_kg + self.embodied_kg

    @property
    def per_thousand_samples_kg(self) -> float:
        return self.per_run_kg * 1000 / self.samples
