"""What a finished run leaves: its energy intervals charged on the pipeline clock, its peak memory, the sections
of its summary (training/run_summary.py: written once, complete, by the stage) and the artifacts under
stages/train-<run>/.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd
import psutil

from ..artifacts import save_torch, write_bytes, write_csv
from ..config.training import EnergyParams
from ..emissions.accounting import (
    IDLE,
    SoftwareCarbonIntensity,
    embodied_share_kg,
    emissions_kg,
    interval_intensity,
)
from ..emissions.meter import MeterReading
from ..errors import ArtifactError
from ..intensity.horizon import Horizon
from ..intensity.series import IntensitySeries
from ..layout import train_dir
from ..timeutil import iso, parse_instant
from .resume import ResumeFolder
from .run_summary import CarbonMetrics, MemoryMetrics, SchedulerMetrics, SciMetrics, SegmentEntry, TrainingMetrics

if TYPE_CHECKING:
    import torch

INTERVAL_COLUMNS = [
    "start", "end", "energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "intensity_g_per_kwh",
    "emissions_kg", "segment", "node", "phase", "codecarbon_energy_kwh",
]


class MemoryUse:
    """Peak memory while training: CUDA's allocator peak since the start, or the process's peak RSS on a CPU, reset
    where Linux allows it (so a profile that ran before training in the same process is not counted)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(device)
        self.reset = reset_peak_rss()
        self.rss_before_training_mb = psutil.Process().memory_info().rss / 2**20

    def peak(self) -> dict:
        if self.device.type == "cuda":
            import torch

            return {
                "peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / 2**20,
                "peak_reserved_mb": torch.cuda.max_memory_reserved(self.device) / 2**20,
                "method": "cuda-allocator-peak",
            }
        peak = peak_rss_mb() if self.reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "peak_memory_mb": peak,
            "rss_before_training_mb": self.rss_before_training_mb,
            "method": "peak-rss-since-training" if self.reset else "peak-rss-since-start",
        }


PROC_STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux: writing 5 to clear_refs)."""
    try:
        CLEAR_REFS.write_text("5")
        return peak_rss_mb() > 0
    except (OSError, ValueError):
        return False


def peak_rss_mb() -> float:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError("no VmHWM in /proc/self/status")


def combine_memory(per_rank: list[dict]) -> MemoryMetrics:
    """The largest rank's figures; under torchrun also every rank's peak."""
    largest = dict(max(per_rank, key=lambda memory: memory["peak_memory_mb"]))
    if len(per_rank) > 1:
        largest["per_rank_peak_memory_mb"] = [memory["peak_memory_mb"] for memory in per_rank]
    return MemoryMetrics.model_validate(largest)


def energy_intervals(rows: list[dict], series: IntensitySeries) -> pd.DataFrame:
    """One row per measurement of every segment and node, on the pipeline clock, charged the intensity then."""
    if not rows:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    rows = sorted(rows, key=lambda row: (row["clock_start"], row["node"]))
    starts = np.array([row["clock_start"] for row in rows])
    ends = np.array([row["clock_end"] for row in rows])
    energy = np.array([row["energy_kwh"] for row in rows])
    if ends.max() > series.end:
        raise ArtifactError(
            f"the run ends at {iso(ends.max())}, after the intensity horizon ({iso(series.end)}): raise carbon.horizon"
        )
    intensity = interval_intensity(series, starts, ends)
    return pd.DataFrame(
        {
            "start": [iso(t) for t in starts],
            "end": [iso(t) for t in ends],
            "energy_kwh": energy,
            "cpu_energy_kwh": [row["cpu_energy_kwh"] for row in rows],
            "gpu_energy_kwh": [row["gpu_energy_kwh"] for row in rows],
            "ram_energy_kwh": [row["ram_energy_kwh"] for row in rows],
            "intensity_g_per_kwh": intensity,
            "emissions_kg": emissions_kg(energy, intensity),
            "segment": [row["segment"] for row in rows],
            "node": [row["node"] for row in rows],
            "phase": [row["phase"] for row in rows],
            "codecarbon_energy_kwh": [row["codecarbon_energy_kwh"] for row in rows],
        },
        columns=INTERVAL_COLUMNS,
    )


def measured_segment_log(segment_log: list[SegmentEntry], rows: list[dict]) -> list[SegmentEntry]:
    """Each segment ends at its last measurement: CodeCarbon's final one comes after the segment's last checkpoint."""
    ends: dict[int, float] = {}
    for row in rows:
        ends[row["segment"]] = max(ends.get(row["segment"], row["clock_end"]), row["clock_end"])
    return [
        entry.ending(iso(max(parse_instant(entry.clock_end), ends.get(entry.segment, -np.inf))))
        for entry in segment_log
    ]


def training_metrics(epochs: list[dict], train_seconds: float, **progress: Any) -> TrainingMetrics:
    """The last epoch's figures, the mean throughput, and `progress`: the run's samples and segments."""
    last = epochs[-1]
    return TrainingMetrics(
        final_accuracy=last["test_accuracy"],
        final_loss=last["train_loss"],
        test_loss=last["test_loss"],
        epochs=len(epochs),
        total_time_seconds=train_seconds,
        samples_per_second=sum(e["samples_per_second"] for e in epochs) / len(epochs),
        **progress,
    )


def energy_method(reading: Optional[MeterReading]) -> str:
    """How the energy was measured, as an identifier (docs/accounting.md says what each means): the CPU and RAM's
    way, then `+nvml` where a GPU was read."""
    if reading is None or reading.error is not None:
        return "unknown"
    cpu = next((item for item in reading.hardware if item.startswith("CPU(")), "")
    if "process-tree" in reading.method:  # the process tree's coefficients charged the CPU and RAM
        way = "process-tree-model"
    elif "Rapl" in cpu:
        way = "rapl"
    elif "Cpu Load" in cpu:
        way = "cpu-load-model"
    else:
        way = "constant-tdp"
    return way + ("+nvml" if any(item.startswith("GPU(") for item in reading.hardware) else "")


def carbon_metrics(
    intervals: pd.DataFrame, energy_errors: list[str], reading: Optional[MeterReading], horizon: Horizon
) -> CarbonMetrics:
    """Emissions summed over the intervals, each charged the intensity in force then; unknown (None) if any
    segment's tracker failed or nothing was measured."""
    known = len(intervals) > 0 and not energy_errors
    energy = float(intervals["energy_kwh"].sum()) if known else None
    emissions = float(intervals["emissions_kg"].sum()) if known else None
    phases = by_phase(intervals) if known else {}
    tracked_seconds = sum(phase["seconds"] for phase in phases.values()) if known else None
    # CodeCarbon's static figure is its country factor x energy: the factor from this segment, the energy of all
    segment_energy = sum(interval.energy_kwh for interval in reading.intervals) if reading is not None else 0.0
    static_factor = None
    if known and reading.codecarbon_emissions_kg and segment_energy:
        static_factor = reading.codecarbon_emissions_kg / segment_energy
    return CarbonMetrics(
        total_emissions_kg=emissions,
        energy_consumed_kwh=energy,
        avg_power_watts=energy * 3.6e6 / tracked_seconds if energy is not None and tracked_seconds else None,
        mean_intensity_g_per_kwh=1000 * emissions / energy if energy else None,
        intensity_source=horizon.series.source,
        intensity_source_failures=list(horizon.source_failures),  # sources that failed before it served
        measured_seconds=tracked_seconds,
        by_phase=phases,
        energy_method=energy_method(reading) if known else "unknown",
        # what CodeCarbon alone would have charged (machine-level RAM, wall-time driven), for reference
        codecarbon_energy_kwh=float(intervals["codecarbon_energy_kwh"].sum()) if known else None,
        energy_error="; ".join(energy_errors) or (None if known else "CodeCarbon recorded no measurement"),
        codecarbon_static_average_emissions_kg=static_factor * energy if static_factor is not None else None,
        codecarbon_country=reading.codecarbon_country if reading else "",
    )


def by_phase(intervals: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Energy, emissions and measured seconds of each phase: training, the profile before it, hardware held idle.
    Nodes measure side by side, so their overlapping intervals count once in the seconds."""
    seconds = intervals["end"].map(parse_instant) - intervals["start"].map(parse_instant)
    return {
        str(phase): {
            "energy_kwh": float(rows["energy_kwh"].sum()),
            "emissions_kg": float(rows["emissions_kg"].sum()),
            "seconds": float(seconds[rows.index].sum()) / intervals["node"].nunique(),
        }
        for phase, rows in intervals.groupby("phase", sort=True)
    }


def sci_metrics(
    carbon: CarbonMetrics, energy: EnergyParams, samples: Optional[int], nodes: int, simulated: bool
) -> SciMetrics:
    """SCI (ISO/IEC 21031:2024) of the run: (E x I + M) per R, R one run and 1,000 training samples (null when the
    samples are unknown: a command of your own that did not report them)."""
    known = carbon.total_emissions_kg is not None
    held_seconds = carbon.measured_seconds if known else None
    sci = None
    if known:
        embodied = embodied_share_kg(energy.embodied_kg, energy.lifetime_years, held_seconds, nodes)
        sci = SoftwareCarbonIntensity(carbon.total_emissions_kg, embodied, samples)
    return SciMetrics(
        per_run_g=sci.per_run_kg * 1000 if sci else None,
        per_1000_samples_g=sci.per_thousand_samples_kg * 1000 if sci and samples else None,
        operational_g=sci.operational_kg * 1000 if sci else None,
        embodied_g=sci.embodied_kg * 1000 if sci else None,
        energy_kwh=carbon.energy_consumed_kwh,
        held_idle_energy_kwh=carbon.by_phase.get(IDLE, {}).get("energy_kwh", 0.0) if known else None,
        held_seconds=held_seconds,
        samples=samples,
        devices=nodes,
        embodied_kg_per_device=energy.embodied_kg,
        lifetime_years=energy.lifetime_years,
        held_idle="not-held" if simulated else "measured",
        method="sci-iso-21031",
    )


def scheduler_metrics(horizon: Horizon, start: float, placement: str, carbon: CarbonMetrics) -> SchedulerMetrics:
    energy, emissions = carbon.energy_consumed_kwh, carbon.total_emissions_kg
    return SchedulerMetrics(
        clock=horizon.clock,
        simulated_clock=horizon.simulated,
        placement=placement,
        start=start,
        wait_seconds=start - horizon.submitted,
        initial_intensity_g_per_kwh=horizon.series.at(start),
        training_intensity_g_per_kwh=1000 * emissions / energy if energy else None,
    )


def write_outputs(
    run_name: str, model: torch.nn.Module, state: dict, epochs: list[dict], intervals: pd.DataFrame,
    resume: ResumeFolder,
) -> None:
    """The finished run's artifacts (not its summary, which the stage writes once it is complete)."""
    out_dir = train_dir(run_name)
    save_torch(out_dir / "model.pt", model.state_dict())
    save_torch(out_dir / "checkpoint.pt", state)
    write_csv(out_dir / "epochs.csv", pd.DataFrame(epochs))
    write_csv(out_dir / "energy_intervals.csv", intervals)
    for log in resume.folder.glob("emissions*.csv"):  # CodeCarbon's own log, every segment's row
        write_bytes(out_dir / log.name, log.read_bytes())
