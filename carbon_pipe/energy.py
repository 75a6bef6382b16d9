"""Energy measurement: CodeCarbon's offline tracker, with a public output hook that keeps every interval.

CodeCarbon calls `live_out(total, delta)` after each measurement and `out(total, delta)` once at stop with
the remainder, so the recorded deltas add up exactly to the run's total energy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from codecarbon import OfflineEmissionsTracker
from codecarbon.output_methods.base_output import BaseOutput


@dataclass(frozen=True)
class EnergyInterval:
    wall_start: float
    wall_end: float
    energy_kwh: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float


class IntervalRecorder(BaseOutput):
    """Turns CodeCarbon's per-measurement deltas into back-to-back wall-clock intervals."""

    def __init__(self) -> None:
        self.intervals: list[EnergyInterval] = []
        self._last = time.time()

    def begin(self, wall_time: float) -> None:
        self._last = wall_time

    def _record(self, delta) -> None:
        now = time.time()
        if delta.energy_consumed == 0 and now - self._last < 1e-3:
            return  # the empty remainder CodeCarbon reports when stop() follows a measurement
        self.intervals.append(
            EnergyInterval(self._last, now, delta.energy_consumed, delta.cpu_energy, delta.gpu_energy, delta.ram_energy)
        )
        self._last = now

    def live_out(self, total, delta) -> None:
        self._record(delta)

    def out(self, total, delta) -> None:
        self._record(delta)


@dataclass
class EnergyReport:
    intervals: list[EnergyInterval]
    method: str
    codecarbon_emissions_kg: float | None
    codecarbon_country: str
    error: str | None = None
    hardware: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.error is None and bool(self.intervals)


def describe_method(hardware: list[str]) -> str:
    """Say how each component's energy was obtained, from CodeCarbon's hardware descriptions."""
    parts = []
    for item in hardware:
        if item.startswith("CPU("):
            if "Rapl" in item:
                parts.append("CPU: RAPL counters (measured)")
            elif "Cpu Load" in item:
                parts.append("CPU: CPU-load x TDP model (estimate, no RAPL)")
            else:
                parts.append(f"CPU: constant TDP (estimate, {item})")
        elif item.startswith("GPU("):
            parts.append("GPU: NVML (measured)")
        elif item.startswith("RAM("):
            parts.append("RAM: CodeCarbon power model (estimate)")
        else:
            parts.append(item)
    return "; ".join(parts) or "unknown"


class EnergyMeter:
    """Start/stop around training. A tracker failure never stops training: the report says energy is unknown, and why."""

    def __init__(self, output_dir: Path, country_iso_code: str, measure_power_secs: float) -> None:
        self.recorder = IntervalRecorder()
        self.country = country_iso_code
        self.error: str | None = None
        self.started_at = time.time()
        self.tracker: OfflineEmissionsTracker | None = None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        try:
            self.tracker = OfflineEmissionsTracker(
                country_iso_code=country_iso_code,
                tracking_mode="process",
                measure_power_secs=measure_power_secs,
                api_call_interval=1,
                output_handlers=[self.recorder],
                output_dir=str(output_dir),
                output_file="emissions.csv",
                log_level="error",
                allow_multiple_runs=True,
            )
        except Exception as exc:  # CodeCarbon can fail in many ways; training must not.
            self.error = f"CodeCarbon failed to initialise: {exc.__class__.__name__}: {exc}"

    def start(self) -> None:
        """Start measuring; `started_at` is the wall-clock origin of the run's intervals."""
        self.started_at = time.time()
        self.recorder.begin(self.started_at)
        if self.tracker is None:
            return
        try:
            self.tracker.start()
        except Exception as exc:
            self.error = f"CodeCarbon failed to start: {exc.__class__.__name__}: {exc}"

    def stop(self) -> EnergyReport:
        emissions = None
        hardware: list[str] = []
        if self.tracker is not None and self.error is None:
            try:
                emissions = self.tracker.stop()
                hardware = list(self.tracker._conf.get("hardware", []))  # CodeCarbon's own descriptions
            except Exception as exc:
                self.error = f"CodeCarbon failed to stop: {exc.__class__.__name__}: {exc}"
            if self.error is None and emissions is None:
                self.error = "CodeCarbon recorded no measurement"
        return EnergyReport(
            intervals=list(self.recorder.intervals) if self.error is None else [],
            method=describe_method(hardware) if self.error is None else "unknown",
            codecarbon_emissions_kg=emissions if self.error is None else None,
            codecarbon_country=self.country,
            error=self.error,
            hardware=hardware,
        )
