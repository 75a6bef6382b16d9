"""A carbon-intensity time series: piecewise constant, UTC, each point with its own interval length.

Instants are float seconds since the UNIX epoch. Point i holds `values[i]` gCO2/kWh over
[boundaries[i], boundaries[i+1]); the series is contiguous by construction (a gap would be a point we do not know).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from ..timeutil import iso, parse_instant

# gCO2/kWh. The dirtiest grids average under 1,500 (lignite plants alone reach ~1,200); a reading above this is a
# unit error or garbage, and a number near the float maximum would turn every mean into inf or NaN.
MAX_INTENSITY = 10_000.0


class IntensityPoint(NamedTuple):
    start: float
    end: float
    carbon_intensity: float
    is_forecast: bool


@dataclass(frozen=True)
class IntensitySeries:
    boundaries: np.ndarray
    values: np.ndarray
    is_forecast: np.ndarray
    source: str
    region: str
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise ValueError("an intensity series needs at least one point")
        if len(self.boundaries) != len(self.values) + 1 or len(self.is_forecast) != len(self.values):
            raise ValueError("boundaries must have one more entry than values and is_forecast")
        if not np.all(np.diff(self.boundaries) > 0):
            raise ValueError("intensity points must be in strictly increasing time order")
        if not np.all(np.isfinite(self.values)) or np.any(self.values < 0):
            raise ValueError("intensities must be finite and non-negative")

    @classmethod
    def from_points(
        cls, points: list[IntensityPoint], source: str, region: str, notes: tuple[str, ...] = ()
    ) -> "IntensitySeries":
        """Points must tile time: each one ends where the next starts."""
        if not points:
            raise ValueError("an intensity series needs at least one point")
        for before, after in zip(points, points[1:]):
            if after.start != before.end:
                raise ValueError(f"intensity points are not contiguous at {iso(before.end)} / {iso(after.start)}")
        return cls(
            boundaries=np.array([p.start for p in points] + [points[-1].end], dtype=float),
            values=np.array([p.carbon_intensity for p in points], dtype=float),
            is_forecast=np.array([p.is_forecast for p in points], dtype=bool),
            source=source,
            region=region,
            notes=notes,
        )

    @classmethod
    def from_samples(
        cls,
        times: np.ndarray,
        values: np.ndarray,
        is_forecast: np.ndarray,
        step: float | np.ndarray,
        start: float,
        end: float,
        source: str,
        region: str,
        notes: tuple[str, ...] = (),
    ) -> "IntensitySeries":
        """Timestamped samples (each starts a point) -> the contiguous stretch of them around [start, end).

        A sample holds until the next one or for `step` (one for all or one each), whichever is sooner: a longer
        silence is a hole, not a value stretched over it. Of samples sharing a time the first listed wins (list
        actuals before forecasts).
        The result is the unbroken run of points holding `start`, cut to the points that overlap [start, end).
        """
        times = np.asarray(times, dtype=float)
        steps = np.broadcast_to(np.asarray(step, dtype=float), times.shape)
        order = np.argsort(times, kind="stable")
        first = np.append(True, np.diff(times[order]) > 0)
        keep = order[first]
        times, steps = times[keep], steps[keep]
        values, is_forecast = np.asarray(values, dtype=float)[keep], np.asarray(is_forecast, dtype=bool)[keep]
        ends = np.minimum(np.append(times[1:], np.inf), times + steps)
        held = int(np.searchsorted(times, start, side="right")) - 1
        if held < 0 or ends[held] <= start:
            span = f"{iso(times[0])} to {iso(ends[-1])}" if len(times) else "nothing"
            raise ValueError(f"no intensity for {iso(start)} (the data covers {span})")
        last = held
        while last + 1 < len(times) and ends[last] == times[last + 1] and times[last + 1] < end:
            last += 1
        chosen = slice(held, last + 1)
        return cls(np.append(times[chosen], ends[last]), values[chosen], is_forecast[chosen], source, region, notes)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: start, end (ISO-8601 UTC), carbon_intensity, is_forecast."""
        return pd.DataFrame(
            [(iso(p.start), iso(p.end), p.carbon_intensity, p.is_forecast) for p in self.points()],
            columns=["start", "end", "carbon_intensity", "is_forecast"],
        )

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, source: str, region: str, notes: tuple[str, ...] = ()
    ) -> "IntensitySeries":
        """The inverse of `to_frame`."""
        points = [
            IntensityPoint(
                parse_instant(row.start), parse_instant(row.end), float(row.carbon_intensity), bool(row.is_forecast)
            )
            for row in frame.itertuples(index=False)
        ]
        return cls.from_points(points, source, region, notes)

    @property
    def start(self) -> float:
        return float(self.boundaries[0])

    @property
    def end(self) -> float:
        return float(self.boundaries[-1])

    def points(self) -> Iterator[IntensityPoint]:
        for i, value in enumerate(self.values):
            yield IntensityPoint(
                float(self.boundaries[i]), float(self.boundaries[i + 1]), float(value), bool(self.is_forecast[i])
            )

    def covers(self, start: float, end: float) -> bool:
        return self.start <= start and end <= self.end

    def at(self, moment: float) -> float:
        """The intensity in force at `moment`."""
        if not self.covers(moment, moment):
            raise ValueError(f"{iso(moment)} is outside the intensity series ({iso(self.start)} to {iso(self.end)})")
        index = min(int(np.searchsorted(self.boundaries, moment, side="right")) - 1, len(self.values) - 1)
        return float(self.values[index])

    def cumulative(self, moments: np.ndarray | float) -> np.ndarray:
        """Integral of intensity from the series start to each moment (g/kWh x s), exact for piecewise-constant data."""
        moments = np.asarray(moments, dtype=float)
        if np.any(moments < self.start) or np.any(moments > self.end):
            raise ValueError(f"times outside the intensity series ({iso(self.start)} to {iso(self.end)})")
        cum = np.concatenate([[0.0], np.cumsum(self.values * np.diff(self.boundaries))])
        index = np.clip(np.searchsorted(self.boundaries, moments, side="right") - 1, 0, len(self.values) - 1)
        return cum[index] + self.values[index] * (moments - self.boundaries[index])

    def integral(self, starts: np.ndarray | float, ends: np.ndarray | float) -> np.ndarray:
        """Integral of intensity over each [start, end] (g/kWh x s), summed over the points that span overlaps.

        A difference of `cumulative` values carries the rounding of everything before the span; this is rounded
        relative to itself, so equal spans of equal values come out equal however far into the series they lie.
        Spans in time order keep it linear in their number.
        """
        starts, ends = np.atleast_1d(np.asarray(starts, dtype=float)), np.atleast_1d(np.asarray(ends, dtype=float))
        if np.any(starts < self.start) or np.any(ends > self.end) or np.any(ends < starts):
            raise ValueError(
                f"spans must end after they start, within the intensity series ({iso(self.start)} to {iso(self.end)})"
            )
        bounds, values = self.boundaries, self.values
        first = np.clip(np.searchsorted(bounds, starts, side="right") - 1, 0, len(values) - 1)
        last = np.clip(np.searchsorted(bounds, ends, side="left") - 1, 0, len(values) - 1)  # the point holding the end
        head = values[first] * (np.minimum(bounds[first + 1], ends) - starts)
        tail = np.where(last > first, values[last] * (ends - bounds[last]), 0.0)
        inner = np.zeros(len(starts))
        spanned = last > first + 1  # whole points between head and tail
        if spanned.any():
            pairs = np.stack([first[spanned] + 1, last[spanned]], axis=1).ravel()
            inner[spanned] = np.add.reduceat(values * np.diff(bounds), pairs)[::2]
        return head + inner + tail

    def mean(self, start: float, end: float) -> float:
        """Time-weighted mean intensity over [start, end]; the value in force at `start` when end == start."""
        if end < start:
            raise ValueError("mean intensity needs end >= start")
        if end == start:
            return self.at(start)
        return float(self.integral(start, end)[0] / (end - start))
