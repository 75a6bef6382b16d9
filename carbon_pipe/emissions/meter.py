"""Energy measurement: CodeCarbon's offline tracker, with a public output hook that keeps every interval.

CodeCarbon calls `live_out(total, delta)` after each measurement and `out(total, delta)` once at stop with
the remainder, so the recorded deltas add up exactly to the run's total energy. Each interval is also appended
to a journal as it arrives, so the energy of a run segment that is killed survives it.

Where CodeCarbon has no counter for the CPU (no RAPL), the hook charges each interval's CPU and RAM energy from the
process tree's own CPU time and resident memory instead (attribution.py), in process mode; CodeCarbon still times
the intervals, finds the hardware and measures a GPU through NVML. Its own figure for each interval is kept beside
ours (`codecarbon_energy_kwh`), for reference.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from codecarbon import OfflineEmissionsTracker
from codecarbon.output_methods.base_output import BaseOutput

from ..artifacts import write_bytes
from ..errors import ArtifactError
from .accounting import TRAINING
from .attribution import Coefficients, TreeEnergy, codecarbon_coefficients


@dataclass(frozen=True)
class EnergyInterval:
    wall_start: float
    wall_end: float
    energy_kwh: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    codecarbon_energy_kwh: float  # CodeCarbon's own figure, for reference (the same as energy_kwh unless attributed)


class IntervalRecorder(BaseOutput):
    """Turns CodeCarbon's per-measurement deltas into back-to-back wall-clock intervals; with `coefficients`, their
    CPU and RAM energy charged from the process tree (its GPU energy stays CodeCarbon's)."""

    def __init__(
        self, on_interval: Callable[[EnergyInterval], None] | None = None, coefficients: Coefficients | None = None
    ) -> None:
        self.intervals: list[EnergyInterval] = []
        self.on_interval = on_interval
        self.coefficients = coefficients
        self.tree: TreeEnergy | None = None
        self._charged = (0.0, 0.0)
        self._last = time.time()

    def begin(self, wall_time: float) -> None:
        self._last = wall_time
        if self.coefficients is not None:
            self.tree, self._charged = TreeEnergy(self.coefficients), (0.0, 0.0)

    def _attributed(self) -> tuple[float, float]:
        """The tree's CPU and RAM kWh since the last interval."""
        cpu, ram = self.tree.joules()
        delta = ((cpu - self._charged[0]) / 3.6e6, (ram - self._charged[1]) / 3.6e6)
        self._charged = (cpu, ram)
        return delta

    def _record(self, delta) -> None:
        now = time.time()
        if delta.energy_consumed == 0 and now - self._last < 1e-3:
            return  # the empty remainder CodeCarbon reports when stop() follows a measurement
        cpu, gpu, ram = float(delta.cpu_energy), float(delta.gpu_energy), float(delta.ram_energy)
        if self.tree is not None:
            cpu, ram = self._attributed()
        interval = EnergyInterval(self._last, now, cpu + gpu + ram, cpu, gpu, ram, float(delta.energy_consumed))
        self.intervals.append(interval)
        self._last = now
        if self.on_interval is not None:
            self.on_interval(interval)

    def live_out(self, total, delta) -> None:
        self._record(delta)

    def out(self, total, delta) -> None:
        self._record(delta)


@dataclass
class MeterReading:
    """What the meter read over one start-stop: every interval, how it measured, and CodeCarbon's own figure."""

    intervals: list[EnergyInterval]
    method: str
    codecarbon_emissions_kg: float | None
    codecarbon_country: str
    error: str | None = None
    hardware: list[str] = field(default_factory=list)


def cpu_is_modelled(hardware: list[str]) -> bool:
    """CodeCarbon has no counter for the CPU (no RAPL): its CPU figure is a model."""
    return not any(item.startswith("CPU(") and "Rapl" in item for item in hardware)


def describe_method(hardware: list[str], coefficients: Coefficients | None = None) -> str:
    """Say how each component's energy was obtained, from CodeCarbon's hardware descriptions (and the process
    tree's coefficients, where they charged the CPU and RAM)."""
    parts = [coefficients.describe()] if coefficients is not None else []
    for item in hardware:
        if coefficients is not None and item.startswith(("CPU(", "RAM(")):
            continue
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
    """Start/stop around training. A tracker failure never stops training: the reading says energy is unknown and
    why."""

    def __init__(
        self,
        output_dir: Path,
        country_iso_code: str,
        measure_power_secs: float,
        on_interval: Callable[[EnergyInterval], None] | None = None,
        tracking_mode: str = "process",
        output_file: str = "emissions.csv",
    ) -> None:
        self.recorder = IntervalRecorder(on_interval)
        self.country = country_iso_code
        self.error: str | None = None
        self.started_at = time.time()
        self.tracker: OfflineEmissionsTracker | None = None
        self.coefficients: Coefficients | None = None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        try:
            self.tracker = OfflineEmissionsTracker(
                country_iso_code=country_iso_code,
                tracking_mode=tracking_mode,
                measure_power_secs=measure_power_secs,
                api_call_interval=1,
                output_handlers=[self.recorder],
                output_dir=str(output_dir),
                output_file=output_file,
                log_level="error",
                allow_multiple_runs=True,
            )
            # Its hardware detection (about a second) here, not in start(): what is measured starts with start().
            self.tracker.get_detected_hardware()
            # Under torchrun (machine mode) the node is measured whole; in process mode, without RAPL, the tree is.
            if tracking_mode == "process" and cpu_is_modelled(list(self.tracker._conf.get("hardware", []))):
                self.coefficients = self.recorder.coefficients = codecarbon_coefficients()
        except Exception as exc:  # CodeCarbon can fail in many ways; training must not.
            self.error = f"CodeCarbon failed to initialise: {exc.__class__.__name__}: {exc}"

    def start(self, started_at: float | None = None) -> None:
        """Start measuring; `started_at` (default: now) is the wall-clock origin of the first interval."""
        self.started_at = time.time() if started_at is None else started_at
        self.recorder.begin(self.started_at)
        if self.tracker is None:
            return
        try:
            self.tracker.start()
        except Exception as exc:
            self.error = f"CodeCarbon failed to start: {exc.__class__.__name__}: {exc}"

    def stop(self) -> MeterReading:
        emissions = None
        hardware: list[str] = []
        if self.tracker is not None and self.error is None:
            try:
                emissions = self.tracker.stop()
                hardware = list(self.tracker._conf.get("hardware", []))  # CodeCarbon's own descriptions
            except Exception as exc:
                self.error = f"CodeCarbon failed to stop: {exc.__class__.__name__}: {exc}"
            if self.error is None and emissions is None:
                self.error = "CodeCarbon recorded no measurement (it failed silently; check its CODECARBON_* settings)"
        return MeterReading(
            intervals=list(self.recorder.intervals) if self.error is None else [],
            method=describe_method(hardware, self.coefficients) if self.error is None else "unknown",
            codecarbon_emissions_kg=emissions if self.error is None else None,
            codecarbon_country=self.country,
            error=self.error,
            hardware=hardware,
        )


JOURNAL_COLUMNS = (
    "segment", "node", "clock_start", "clock_end", "energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh",
    "phase", "codecarbon_energy_kwh",
)


class EnergyJournal:
    """An append-only CSV of every measured interval, placed on the pipeline clock, fsynced as it is written.

    It outlives the process: a resumed run reads the intervals of all earlier segments from it. A kill in the
    middle of an append leaves at most a torn last line, which `read` drops. Each segment has one `phase`.
    """

    def __init__(
        self, path: Path, segment: int, node: int, to_clock: Callable[[float], float], phase: str = TRAINING
    ) -> None:
        self.path = path
        self.segment = segment
        self.node = node
        self.to_clock = to_clock
        self.phase = phase
        if not path.exists():
            write_bytes(path, (",".join(JOURNAL_COLUMNS) + "\n").encode())
        else:  # cut a line torn by a kill, so this segment's lines start on a fresh line
            text = path.read_bytes()
            if not text.endswith(b"\n"):
                write_bytes(path, text[: text.rfind(b"\n") + 1])

    def append(self, interval: EnergyInterval) -> None:
        values = (
            self.to_clock(interval.wall_start), self.to_clock(interval.wall_end),
            interval.energy_kwh, interval.cpu_energy_kwh, interval.gpu_energy_kwh, interval.ram_energy_kwh,
        )
        # repr of a Python float round-trips exactly (CodeCarbon may hand over numpy floats, whose repr differs)
        fields = [
            str(self.segment), str(self.node), *(repr(float(value)) for value in values), self.phase,
            repr(float(interval.codecarbon_energy_kwh)),
        ]
        line = ",".join(fields) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)  # removed under a run: the run finds out, not this thread
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def note_error(self, message: str) -> None:
        """A segment whose tracker failed makes the whole run's energy unknown; the note outlives the process."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.errors_path(self.path), "a", encoding="utf-8") as handle:
            handle.write(f"segment {self.segment}: {message}".replace("\n", " ") + "\n")

    @staticmethod
    def errors_path(path: Path) -> Path:
        return path.with_suffix(".errors")

    @staticmethod
    def read_errors(path: Path) -> list[str]:
        try:
            return EnergyJournal.errors_path(path).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    @staticmethod
    def read(path: Path) -> list[dict]:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(complete))
        try:
            if tuple(reader.fieldnames or ()) != JOURNAL_COLUMNS:
                raise ValueError(f"its header is {reader.fieldnames}, not {','.join(JOURNAL_COLUMNS)}")
            return [_journal_row(row) for row in reader]
        except (TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{path}: not an energy journal carbon-pipe wrote ({exc}): delete {path.parent} to start the run over"
            ) from None


def _journal_row(row: dict) -> dict:
    return {key: _journal_value(key, row[key]) for key in JOURNAL_COLUMNS}


def _journal_value(key: str, value: str) -> int | float | str:
    if key == "phase":
        return value
    return int(value) if key in ("segment", "node") else float(value)
