"""A carbon-intensity trace file as a source (`carbon.csv`): recorded values, served as if they were forecasts.

Loading and validation are traces.py's; this module picks the stretch a plan asks for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from ...config.carbon import PRESETS, TraceFormat
from ...errors import SourceError
from ...timeutil import iso
from ..series import IntensitySeries
from ..traces import detect_format, load_trace
from .base import IntensitySource, register


@register("csv")
class CsvTraceSource(IntensitySource):
    def __init__(self, params, **options: Any) -> None:
        super().__init__(params)
        self.settings = params.csv
        self.trace: Optional[IntensitySeries] = None

    def trace_format(self) -> TraceFormat:
        chosen = {field.name: getattr(self.settings, field.name) for field in dataclasses.fields(TraceFormat)}
        preset = self.settings.preset
        # auto: the one preset whose columns the file has, as the backtest picks it
        base = detect_format(self.settings.path) if preset == "auto" else PRESETS[preset]
        return dataclasses.replace(base, **{k: v for k, v in chosen.items() if v is not None})

    def whole(self) -> IntensitySeries:
        """The whole trace, loaded once."""
        if self.trace is None:
            self.trace = load_trace(self.settings.path, self.trace_format(), self.name, self.region)
        return self.trace

    def series(self, start: float, end: float) -> IntensitySeries:
        trace = self.whole()
        if not trace.start <= start < trace.end:
            raise SourceError(
                f"{self.name}: {self.settings.path} covers {iso(trace.start)} to {iso(trace.end)}, not {iso(start)}"
            )
        first = int(np.searchsorted(trace.boundaries, start, side="right")) - 1
        last = min(len(trace.values), max(first + 1, int(np.searchsorted(trace.boundaries, end, side="left"))))
        return IntensitySeries(
            trace.boundaries[first : last + 1],
            trace.values[first:last],
            trace.is_forecast[first:last],
            self.name,
            self.region,
            (f"trace {self.settings.path}: recorded values, used as a perfect forecast",),
        )
