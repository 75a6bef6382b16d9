"""A carbon-intensity time series: piecewise constant, UTC, each point with its own interval length.

Instants are float seconds since the UNIX epoch. Point i holds `values[i]` gCO2/kWh over
[boundaries[i], boundaries[i+1]); the series is contiguous by construction (a gap would be a point we do not know).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd

from .timeutil import iso, parse_instant


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
    def from_points(cls, points: list[IntensityPoint], source: str, region: str, notes: tuple[str, ...] = ()) -> "IntensitySeries":
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

    def to_frame(self) -> pd.DataFrame:
        """One row per point: start, end (ISO-8601 UTC), carbon_intensity, is_forecast."""
        return pd.DataFrame(
            [(iso(p.start), iso(p.end), p.carbon_intensity, p.is_forecast) for p in self.points()],
            columns=["start", "end", "carbon_intensity", "is_forecast"],
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str, region: str, notes: tuple[str, ...] = ()) -> "IntensitySeries":
        """The inverse of `to_frame`."""
        points = [
            IntensityPoint(parse_instant(row.start), parse_instant(row.end), float(row.carbon_intensity), bool(row.is_forecast))
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
            yield IntensityPoint(float(self.boundaries[i]), float(self.boundaries[i + 1]), float(value), bool(self.is_forecast[i]))

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

    def mean(self, start: float, end: float) -> float:
        """Time-weighted mean intensity over [start, end]; the value in force at `start` when end == start."""
        if end < start:
            raise ValueError("mean intensity needs end >= start")
        if end == start:
            return self.at(start)
        integral = self.cumulative(np.array([start, end]))
        return float((integral[1] - integral[0]) / (end - start))
