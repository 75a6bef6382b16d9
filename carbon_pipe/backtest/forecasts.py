"""What a policy may know when it decides: forecasts, synthetic or as issued, and the beliefs built from them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import FieldError, UsageError
from ..timeutil import format_duration, iso
from .grid import Grid

if TYPE_CHECKING:  # traces imports pandas; the maths here needs only the arrays
    from ..intensity.traces import ForecastVintages

MAX_FORECAST_CELLS = 50_000_000


class Forecasts(ABC):
    label: str

    @abstractmethod
    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        """[r, h]: the latest forecast issued by the time of point rows[r], for point rows[r] + h (NaN: none)."""


class SyntheticForecasts(Forecasts):
    """Actual + Gaussian noise of a stated sd, one draw per point of the whole trace (the Let's Wait Awhile model).

    Every issue carries the same draw for a point, so a re-issued forecast differs only in the points already past,
    which are actuals by then. The draws belong to the points, so a point's forecast is the same whatever period
    is scored.
    """

    def __init__(self, grid: Grid, error: float, seed: int, sd_g: Optional[float] = None) -> None:
        """Noise sd = `error` x the mean of `grid` (pass the whole trace), or `sd_g` g/kWh when given."""
        if sd_g is None:
            if not error >= 0:
                raise FieldError("forecast error", "must be >= 0")
            mean = float(grid.values.mean())
            sd, stated = error * mean, f"{error:g} x mean {mean:.1f} g/kWh of the whole trace"
        else:
            if not sd_g >= 0:
                raise FieldError("forecast error in g/kWh", "must be >= 0")
            sd, stated = sd_g, "as given"
        noise = np.random.default_rng(seed).normal(0.0, sd, len(grid))
        self.noisy = np.append(grid.values + noise, np.nan)  # the extra NaN answers for points past the trace
        self.label = f"synthetic: actual + N(0, {sd:.2f} g/kWh: {stated}), seed {seed}"

    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        targets = np.minimum(rows[:, None] + np.arange(horizon), len(self.noisy) - 1)
        return self.noisy[targets]


class IssuedForecasts(Forecasts):
    """Real vintages on the trace grid. Each value holds until the next target time of the file's step."""

    def __init__(self, grid: Grid, vintages: "ForecastVintages") -> None:
        origin = vintages.origin
        gaps = np.diff(vintages.target)[np.diff(vintages.issued) == 0]
        fstep = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else grid.step
        if fstep < grid.step - 1e-9:
            raise UsageError(
                f"{origin}: forecast step {format_duration(fstep)} is finer than the trace step "
                f"{format_duration(grid.step)}"
            )
        per_value = grid.slots(fstep, f"{origin}: forecast step")
        first_index = grid.index(vintages.target)
        off_grid = np.abs(first_index - np.round(first_index)) > 1e-6
        if off_grid.any():
            row = int(off_grid.nonzero()[0][0])
            raise UsageError(
                f"{origin}: target time {iso(vintages.target[row])} is not on the trace's "
                f"{format_duration(grid.step)} grid"
            )
        issues, vintage = np.unique(vintages.issued, return_inverse=True)
        self._tabulate(grid, vintages, vintage, len(issues), np.round(first_index).astype(np.int64), per_value)
        self.issue_at_row = np.searchsorted(issues, grid.time(np.arange(len(grid))), side="right") - 1  # -1: none yet
        self.issues = issues
        self.label = f"issued: {origin} ({len(issues)} issues)"

    def _tabulate(
        self, grid: Grid, vintages, vintage: np.ndarray, issues: int, first_point: np.ndarray, per_value: int
    ) -> None:
        """table[issue, k]: the issue's value for grid point first[issue] + k (one value covers per_value points)."""
        points = first_point[:, None] + np.arange(per_value)
        vintage = np.broadcast_to(vintage[:, None], points.shape).ravel()
        values = np.broadcast_to(vintages.values[:, None], points.shape).ravel()
        points = points.ravel()
        inside = (points >= 0) & (points < len(grid))
        vintage, points, values = vintage[inside], points[inside], values[inside]
        self.first = np.full(issues, np.iinfo(np.int64).max)
        np.minimum.at(self.first, vintage, points)
        width = int((points - self.first[vintage]).max()) + 1 if len(points) else 1
        if issues * width > MAX_FORECAST_CELLS:
            raise UsageError(f"{vintages.origin}: {issues} forecast issues x {width} points is too large to hold")
        self.table = np.full((issues, width), np.nan)
        self.table[vintage, points - self.first[vintage]] = values

    def forecast(self, rows: np.ndarray, horizon: int) -> np.ndarray:
        issue = self.issue_at_row[rows]
        known = issue >= 0
        issue = np.where(known, issue, 0)
        column = rows[:, None] + np.arange(horizon) - self.first[issue][:, None]
        inside = known[:, None] & (column >= 0) & (column < self.table.shape[1])
        return np.where(inside, self.table[issue[:, None], np.clip(column, 0, self.table.shape[1] - 1)], np.nan)


def beliefs(grid: Grid, forecasts: Forecasts, rows: np.ndarray, horizon: int) -> np.ndarray:
    """What a policy at each row believes about the next `horizon` points.

    The forecast, where it covers them; points between now and the forecast's first target (a forecast issued at
    12:00 whose first target is 12:05) take the last known actual. Beyond the forecast: NaN, unknown.
    """
    believed = forecasts.forecast(rows, horizon)
    covered = ~np.isnan(believed)
    lead_gap = (
        (np.arange(horizon) < covered.argmax(axis=1)[:, None]) & covered.any(axis=1)[:, None] & (rows >= 1)[:, None]
    )
    last_actual = grid.values[np.maximum(rows - 1, 0)]
    return np.where(lead_gap, last_actual[:, None], believed)
