"""What a command run leaves: every segment's energy charged on the pipeline clock, what the command reported, and
the same files as `train` leaves (a RunSummary in metrics/<run>.json, energy_intervals.csv, epochs.csv,
emissions.csv), so compare and `dvc metrics diff` read two command runs as they read two `train` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

import pandas as pd

from ..artifacts import write_bytes, write_csv
from ..emissions.meter import EnergyJournal, MeterReading
from ..errors import UsageError
from ..layout import train_dir
from ..timeutil import parse_instant
from ..training.outputs import carbon_metrics, energy_intervals, measured_segment_log, scheduler_metrics, sci_metrics
from ..training.run_summary import CommandMetrics, MemoryMetrics, RunSummary, TrainingMetrics
from .progress import Progress
from .reported import EPOCH_COLUMNS, Reported, read_reported

if TYPE_CHECKING:
    from ..config.params import Params
    from ..training.placement import Placement
    from ..training.resume import ResumeFolder
    from .process import Ending


class Run(Protocol):
    """What the accounting needs of a command run (command/command_run.py: CommandRun)."""

    params: Params
    name: str
    argv: list[str]
    placement: Placement
    resume: ResumeFolder
    discarded: Optional[bool]

    @property
    def reported_file(self) -> Path: ...


def account(
    run: Run, progress: Progress, reading: Optional[MeterReading], ending: Ending, run_start: float
) -> RunSummary:
    """The run's summary, and its energy intervals, epochs and CodeCarbon log written beside the command's own
    files. A finished command's figures must keep the contract; a failed one's are read if they can be."""
    reported, found, problem = _figures(run.reported_file, strict=ending.status == 0)
    journal = run.resume.journal(0)
    rows, errors = EnergyJournal.read(journal), EnergyJournal.read_errors(journal)
    horizon = run.placement.horizon
    intervals = energy_intervals([] if errors else rows, horizon.series)  # may refuse a run past the horizon
    carbon = carbon_metrics(intervals, errors, reading, horizon)
    starts = [row["clock_start"] for row in rows] + [parse_instant(e.clock_start) for e in progress.segment_log]
    start = run.placement.start if run.placement.start is not None else min(starts, default=run_start)
    summary = RunSummary(
        run=run.name,
        training_metrics=_training(reported, progress, rows, bool(run.discarded)),
        carbon_metrics=carbon,
        scheduler_metrics=scheduler_metrics(horizon, start, run.placement.why, carbon),
        batch_size=reported.batch_size,
        gradient_accumulation_steps=reported.gradient_accumulation_steps,
        effective_batch_size=reported.effective_batch_size,
        sci=sci_metrics(carbon, run.params.energy, _samples(reported), 1, horizon.simulated),
        memory_metrics=_memory(reported, progress),
        **{key: getattr(reported, key) for key in ("device", "precision", "world_size", "dataset", "model_class")},
        compile=reported.compile,
        channels_last=reported.channels_last,
        allocator="not-set",  # your command's own process: train.steady_allocator is carbon-pipe train's
        command=CommandMetrics(
            argv=run.argv,
            status="finished" if ending.status == 0 else "failed",
            exit_code=ending.status,
            launches=progress.endings,
            escaped_ended=[found for launch in progress.endings for found in launch.escaped_ended],
            metrics_file_written=found,
            metrics_file_error=problem,
            not_reported=reported.not_reported(),  # null in this summary: not written to $CARBON_PIPE_METRICS
            extra=reported.extra,
        ),
    )
    _write_outputs(run.name, run.resume.folder, intervals, reported)
    return summary


def _samples(reported: Reported) -> Optional[int]:
    """Training samples over the run, for SCI per 1,000: only when the command reported both factors."""
    if reported.train_samples is None or reported.epochs is None:
        return None
    return reported.train_samples * len(reported.epochs)


def _figures(path: Path, strict: bool) -> tuple[Reported, bool, Optional[str]]:
    """A file that breaks the contract stops a finished run (exit 2); a failed run reports its own failure instead."""
    try:
        reported, found = read_reported(path)
    except UsageError as exc:
        if strict:
            raise
        return Reported(), True, str(exc)
    return reported, found, None


def _training(reported: Reported, progress: Progress, rows: list[dict], discarded: bool) -> TrainingMetrics:
    """`train`'s training_metrics: the command's figures, and the run time and segments carbon-pipe saw."""
    segments = [row["segment"] for row in rows] + [entry.segment for entry in progress.segment_log]
    return TrainingMetrics(
        final_accuracy=reported.final_accuracy,
        final_loss=reported.final_loss,
        test_loss=reported.test_loss,
        epochs=None if reported.epochs is None else len(reported.epochs),
        total_time_seconds=progress.seconds,
        samples_per_second=reported.samples_per_second,
        train_samples=reported.train_samples,
        segments=max(segments, default=-1) + 1,
        segment_log=measured_segment_log(progress.segment_log, rows),
        resumed_at_step=progress.segment_log[-1].first_step if len(progress.segment_log) > 1 else None,
        discarded_stale_checkpoint=discarded,
    )


def _memory(reported: Reported, progress: Progress) -> MemoryMetrics:
    """The command's own figure; else the largest resident memory of its process tree, sampled every second."""
    if reported.peak_memory_mb is not None:
        return MemoryMetrics(peak_memory_mb=reported.peak_memory_mb, method="reported-by-command")
    if progress.peak_rss_mb is None:  # it ended before its first sample
        return MemoryMetrics(peak_memory_mb=None, method="not-measured")
    return MemoryMetrics(peak_memory_mb=progress.peak_rss_mb, method="command-tree-rss")


def _write_outputs(name: str, resume: Path, intervals: pd.DataFrame, reported: Reported) -> None:
    out_dir = train_dir(name)
    write_csv(out_dir / "energy_intervals.csv", intervals)
    rows = reported.epoch_rows()
    columns = EPOCH_COLUMNS + [key for row in rows for key in row if key not in EPOCH_COLUMNS]
    write_csv(out_dir / "epochs.csv", pd.DataFrame(rows, columns=list(dict.fromkeys(columns))))
    for log in resume.glob("emissions*.csv"):  # CodeCarbon's own log, every segment's row
        write_bytes(out_dir / log.name, log.read_bytes())
