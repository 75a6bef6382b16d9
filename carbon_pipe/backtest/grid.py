"""The trace on its own regular time grid, and the prefix sums every cost is read from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import FieldError, UsageError
from ..intensity.series import IntensitySeries
from ..timeutil import format_duration, iso

MAX_GRID_GROWTH = 8  # a grid this many times denser than the trace means its times are not on a common step
# Far above any grid (real ones stay under about 2,000 g/kWh), and low enough that no sum or square the backtest
# forms over a trace of any length that fits in memory can overflow a float.
MAX_INTENSITY = 1e9


@dataclass(frozen=True)
class Grid:
    """Point i holds values[i] gCO2/kWh over [start + i * step, start + (i + 1) * step)."""

    start: float
    step: float
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def index(self, moment: float | np.ndarray) -> float | np.ndarray:
        return (moment - self.start) / self.step

    def time(self, index: int | np.ndarray) -> float | np.ndarray:
        return self.start + self.step * index

    @property
    def end(self) -> float:
        return self.start + self.step * len(self.values)

    def slots(self, seconds: float, name: str) -> int:
        """A length as a whole number of grid steps; anything else would start or stop between points."""
        count = seconds / self.step
        if abs(count - round(count)) > 1e-9:
            raise FieldError(
                name, f"{format_duration(seconds)} is not a multiple of the trace step {format_duration(self.step)}"
            )
        return int(round(count))

    def cumulative(self) -> np.ndarray:
        """prefix[i] = sum of values[:i]: the cost of points [a, b) is prefix[b] - prefix[a]."""
        return np.concatenate([[0.0], np.cumsum(self.values)])


def to_grid(series: IntensitySeries) -> Grid:
    """The whole trace on its own regular grid: a piecewise-constant trace is the same function there."""
    bounds = np.round(series.boundaries).astype(np.int64)
    if not np.allclose(bounds, series.boundaries):
        raise UsageError(f"{series.region}: trace times must be whole seconds")
    step = int(np.gcd.reduce(np.diff(bounds)))
    count = (bounds[-1] - bounds[0]) // step
    if count > MAX_GRID_GROWTH * len(series.values):
        raise UsageError(
            f"{series.region}: trace times share no common step (greatest common divisor {step} s); resample it first"
        )
    if count < 2:
        raise UsageError(f"{series.region}: fewer than two trace points")
    times = bounds[0] + step * np.arange(count)
    points = np.searchsorted(bounds, times, side="right") - 1
    grid = Grid(float(bounds[0]), float(step), series.values[points].astype(float))
    check_magnitudes(grid, series.region)
    return grid


def check_magnitudes(grid: Grid, name: str) -> None:
    """Refuse intensities so large that the backtest's sums would overflow into inf or NaN."""
    largest = int(np.argmax(grid.values))
    if not grid.values[largest] <= MAX_INTENSITY:
        raise UsageError(
            f"{name}: intensity {grid.values[largest]:g} g/kWh at {iso(grid.time(largest))} is beyond any grid "
            f"(the backtest accepts up to {MAX_INTENSITY:g}; larger values would overflow its sums)"
        )


def period(grid: Grid, since: Optional[float], until: Optional[float]) -> tuple[int, int]:
    """Grid indices [first, end) of the points that start inside [since, until)."""
    first = 0 if since is None else int(np.ceil(grid.index(since) - 1e-9))
    end = len(grid) if until is None else int(np.ceil(grid.index(until) - 1e-9))
    first, end = max(first, 0), min(end, len(grid))
    if since is not None and until is not None and until <= since:
        raise FieldError("period", f"the end {iso(until)} is not after the start {iso(since)}")
    if end - first < 2:
        chosen = f"{'the start' if since is None else iso(since)} to {'the end' if until is None else iso(until)}"
        raise FieldError(
            "period",
            f"fewer than two trace points from {chosen}: the trace covers {iso(grid.start)} to {iso(grid.end)}",
        )
    return first, end
