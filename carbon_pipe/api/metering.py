"""`track`: meter a block of code or a function and charge each measured interval at the grid's intensity then,
the accounting the pipeline's runs get (CodeCarbon's energy per interval x the intensity over that interval).

    import carbon_pipe
    with carbon_pipe.track("evaluate", source="uk") as tracked:
        evaluate()
    print(tracked.emissions_kg, tracked.intervals)

    meter = carbon_pipe.track("train", trace="grid.csv")
    @meter
    def train(): ...
    train(); print(meter.runs[-1].emissions_kg)
"""

from __future__ import annotations

import csv
import tempfile
from contextlib import ContextDecorator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .settings import api_params

LOG_COLUMNS = ("label", "start", "end", "energy_kwh", "intensity_g_per_kwh", "emissions_kg", "source", "region")


@dataclass(frozen=True)
class ChargedInterval:
    """One measured interval: when (epoch seconds), its energy, and the grid's mean intensity over it."""

    start: float
    end: float
    energy_kwh: float
    intensity_g_per_kwh: Optional[float]
    emissions_kg: Optional[float]


@dataclass
class Tracked:
    """What one metered block did: filled in when the block ends. Unknown figures are None, and `error` says why
    (the energy meter failed, or no source delivered the intensities)."""

    label: str
    started: Optional[float] = None
    ended: Optional[float] = None
    intervals: list[ChargedInterval] = field(default_factory=list)
    energy_kwh: Optional[float] = None
    emissions_kg: Optional[float] = None
    method: str = "unknown"  # how the energy was measured (RAPL, NVML, CodeCarbon's model)
    source: Optional[str] = None
    region: Optional[str] = None
    error: Optional[str] = None

    def rows(self) -> list[dict[str, Any]]:
        """One labelled row per interval (what `track(log=...)` appends to its CSV)."""
        return [
            {"label": self.label, **{k: getattr(i, k) for k in LOG_COLUMNS[1:6]}, "source": self.source,
             "region": self.region}
            for i in self.intervals
        ]


class track(ContextDecorator):
    """Meter what runs inside `with track(label):`, or each call of a function decorated with `@track(label)`.

    Energy comes from CodeCarbon every `measure_power_secs` (default energy.measure_power_secs); when the block ends
    the intensities over it are fetched (`source`, `trace`, or the params' carbon.sources, with fallback) and each
    interval is charged at its own. A failure to measure or fetch never fails the block: its figures are None and
    `error` says why. Each use appends its `Tracked` to `runs`; `log` names a CSV that gets its labelled rows.
    """

    def __init__(
        self,
        label: str = "block",
        *,
        source: Optional[str] = None,
        region: Optional[str] = None,
        base_url: Optional[str] = None,
        trace: Optional[Union[str, Path]] = None,
        params: Optional[Union[str, Path]] = None,
        measure_power_secs: Optional[float] = None,
        log: Optional[Union[str, Path]] = None,
    ) -> None:
        self.label = label
        self.params = api_params(params, source, region, base_url, trace)
        self.measure_power_secs = measure_power_secs or self.params.energy.measure_power_secs
        self.log = None if log is None else Path(log)
        self.runs: list[Tracked] = []
        self._meters: list[tuple[Any, Tracked, tempfile.TemporaryDirectory]] = []

    def __enter__(self) -> Tracked:
        from ..emissions.meter import EnergyMeter

        folder = tempfile.TemporaryDirectory(prefix="carbon-pipe-track-")  # CodeCarbon's own CSV goes there
        meter = EnergyMeter(Path(folder.name), self.params.energy.country_iso_code, self.measure_power_secs)
        tracked = Tracked(self.label)
        self._meters.append((meter, tracked, folder))
        meter.start()
        tracked.started = meter.started_at
        return tracked

    def __exit__(self, *exc: object) -> None:
        meter, tracked, folder = self._meters.pop()
        with folder:
            reading = meter.stop()
        _charge(tracked, reading, self.params)
        self.runs.append(tracked)
        if self.log is not None:
            _append(self.log, tracked.rows())


def _charge(tracked: Tracked, reading: Any, params: Any) -> None:
    """Each interval's energy x the mean intensity over it (emissions/accounting.py), the intensities fetched now."""
    import time

    import numpy as np

    from ..emissions.accounting import emissions_kg, interval_intensity
    from ..errors import CarbonPipeError
    from ..intensity.sources import fetch_series

    tracked.ended, tracked.method = time.time(), reading.method
    if reading.error is not None:
        tracked.error = reading.error
        return
    starts = np.array([i.wall_start for i in reading.intervals])
    ends = np.array([i.wall_end for i in reading.intervals])
    energy = np.array([i.energy_kwh for i in reading.intervals])
    tracked.energy_kwh = float(energy.sum())
    first, last = (float(starts.min()), float(ends.max())) if len(starts) else (tracked.started, tracked.ended)
    try:
        series = fetch_series(params.carbon, first, last, last).series
        intensity = interval_intensity(series, starts, ends)
    except (CarbonPipeError, ValueError) as exc:
        tracked.error = f"no intensities for the block: {exc}"
        tracked.intervals = [ChargedInterval(s, e, k, None, None) for s, e, k in zip(starts, ends, energy)]
        return
    charged = emissions_kg(energy, intensity)
    tracked.source, tracked.region = series.source, series.region
    tracked.emissions_kg = float(charged.sum())
    tracked.intervals = [
        ChargedInterval(float(s), float(e), float(k), float(i), float(c))
        for s, e, k, i, c in zip(starts, ends, energy, intensity, charged)
    ]


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
