"""What compare reads of the train stages: each run's summary (metrics/<run>.json) and CSVs. One reader each, which
refuses a file that is not what train wrote (edited, cut short, `{}`) in one line naming it, before any figure is
derived from it."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable

import pandas as pd

from ..artifacts import read_json, reason
from ..emissions.accounting import TRAINING
from ..errors import ArtifactError
from ..layout import run_metrics, train_dir
from ..timeutil import parse_instant


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_time(value: Any) -> bool:
    try:
        parse_instant(value)
    except ValueError:
        return False
    return True


NUMBER, MAYBE_NUMBER, TEXT, MAYBE_TEXT, FLAG, TIME = (
    "a number", "a number or null", "text", "text or null", "true or false", "a time"
)
CHECKS: dict[str, Callable[[Any], bool]] = {
    NUMBER: _is_number,
    MAYBE_NUMBER: lambda value: value is None or _is_number(value),
    TEXT: lambda value: isinstance(value, str),
    MAYBE_TEXT: lambda value: value is None or isinstance(value, str),
    FLAG: lambda value: isinstance(value, bool),
    TIME: _is_time,
}
# Every field of a run's summary that the comparison, the report and the charts read without a default. A run of
# your own command (`carbon-pipe run`) leaves null what it did not report, and its memory when never sampled.
SUMMARY_FIELDS = {
    "training_metrics.final_accuracy": MAYBE_NUMBER,
    "training_metrics.total_time_seconds": NUMBER,
    "carbon_metrics.total_emissions_kg": MAYBE_NUMBER,
    "carbon_metrics.energy_consumed_kwh": MAYBE_NUMBER,
    "carbon_metrics.mean_intensity_g_per_kwh": MAYBE_NUMBER,
    "carbon_metrics.energy_method": TEXT,
    "memory_metrics.peak_memory_mb": MAYBE_NUMBER,
    "memory_metrics.method": TEXT,
    "scheduler_metrics.start": TIME,
    "scheduler_metrics.wait_seconds": NUMBER,
    "scheduler_metrics.clock": TEXT,
    "scheduler_metrics.simulated_clock": FLAG,
    "precision": MAYBE_TEXT,
}
MISSING = object()  # a key that is not there, unlike one that is null
CSV_COLUMNS = {
    "energy_intervals.csv": ("start", "end", "energy_kwh", "emissions_kg"),
    "epochs.csv": ("epoch", "train_loss", "test_loss", "test_accuracy"),
}


def read_run_summary(run_name: str) -> dict:
    path = run_metrics(run_name)
    summary = read_json(path)
    for key, kind in SUMMARY_FIELDS.items():
        value: Any = summary
        for part in key.split("."):
            value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
        if value is MISSING or not CHECKS[kind](value):
            problem = "missing" if value is MISSING else f"{'null' if value is None else repr(value)}, not {kind}"
            raise ArtifactError(
                f"{path}: not a run summary train wrote ({key} is {problem}): run train --run {run_name} again"
            )
    return summary


def read_run_csv(run_name: str, filename: str) -> pd.DataFrame:
    path = train_dir(run_name) / filename
    again = f"run train --run {run_name} again"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: run train --run {run_name} first") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable CSV ({reason(exc)}): {again}") from None
    missing = [column for column in CSV_COLUMNS[filename] if column not in frame.columns]
    if missing:
        raise ArtifactError(f"{path}: not what train wrote (no column {', '.join(missing)}): {again}")
    return frame


def load_intervals(run_name: str) -> pd.DataFrame:
    """energy_intervals.csv with its times as epoch seconds (`start_s`, `end_s`)."""
    frame = read_run_csv(run_name, "energy_intervals.csv")
    if "phase" not in frame:  # written before runs had phases: training only
        frame["phase"] = TRAINING
    try:
        frame["start_s"] = [parse_instant(t) for t in frame["start"]]
        frame["end_s"] = [parse_instant(t) for t in frame["end"]]
        for column in ("energy_kwh", "emissions_kg"):
            frame[column] = pd.to_numeric(frame[column], errors="raise")
    except (ValueError, TypeError) as exc:
        path = train_dir(run_name) / "energy_intervals.csv"
        raise ArtifactError(f"{path}: not what train wrote ({reason(exc)}): run train --run {run_name} again") from None
    return frame
