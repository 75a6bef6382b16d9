"""A deterministic diurnal curve: the embedded default, so the pipeline runs with no network.

In the grid zone's local time it rises smoothly from the trough (03:00, 200 g/kWh by default) to the peak
(18:00, 450 g/kWh) and falls back, a half cosine on each side, so the curve is continuous with flat extremes.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np

from ...config.carbon import CarbonParams
from ..series import IntensitySeries
from .base import IntensitySource, register


def diurnal_intensity(local_hour: float, peak: float, trough: float, peak_hour: float, trough_hour: float) -> float:
    rise = (peak_hour - trough_hour) % 24 or 24.0
    since_trough = (local_hour - trough_hour) % 24
    middle, half_range = (peak + trough) / 2, (peak - trough) / 2
    if since_trough <= rise:
        return middle - half_range * math.cos(math.pi * since_trough / rise)
    return middle + half_range * math.cos(math.pi * (since_trough - rise) / (24 - rise))


@register("mock")
class MockSource(IntensitySource):
    def __init__(self, params: CarbonParams, **options: object) -> None:
        super().__init__(params)
        self.zone = ZoneInfo(params.mock.timezone)

    def value_at(self, moment: float) -> float:
        local = datetime.fromtimestamp(moment, tz=timezone.utc).astimezone(self.zone)
        hour = local.hour + local.minute / 60 + local.second / 3600
        curve = self.params.mock
        return diurnal_intensity(hour, curve.peak, curve.trough, curve.peak_hour, curve.trough_hour)

    def series(self, start: float, end: float) -> IntensitySeries:
        # Points aligned to the resolution grid, each valued at its midpoint (the curve is smooth).
        step = self.params.mock.resolution
        first = math.floor(start / step) * step
        count = max(1, math.ceil((end - first) / step))
        boundaries = first + step * np.arange(count + 1, dtype=float)
        values = np.array([self.value_at(b + step / 2) for b in boundaries[:-1]])
        return IntensitySeries(
            boundaries=boundaries,
            values=values,
            is_forecast=np.zeros(count, dtype=bool),
            source=self.name,
            region=self.region,
            notes=("synthetic diurnal curve (mock source), not a measurement",),
        )
