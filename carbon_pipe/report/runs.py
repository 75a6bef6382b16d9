"""What compare reads of the train stages' CSVs (the summaries have their model: training/run_summary.py). One reader
each, which refuses a file that is not what train wrote (edited, cut short) in one line naming it, before any figure
is derived from it."""

from __future__ import annotations

import pandas as pd

from ..artifacts import reason
from ..errors import ArtifactError
from ..layout import train_dir
from ..timeutil import parse_instant

CSV_COLUMNS = {
    "energy_intervals.csv": ("start", "end", "energy_kwh", "emissions_kg", "phase"),
    "epochs.csv": ("epoch", "train_loss", "test_loss", "test_accuracy"),
}


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
    try:
        frame["start_s"] = [parse_instant(t) for t in frame["start"]]
        frame["end_s"] = [parse_instant(t) for t in frame["end"]]
        for column in ("energy_kwh", "emissions_kg"):
            frame[column] = pd.to_numeric(frame[column], errors="raise")
    except (ValueError, TypeError) as exc:
        path = train_dir(run_name) / "energy_intervals.csv"
        raise ArtifactError(f"{path}: not what train wrote ({reason(exc)}): run train --run {run_name} again") from None
    return frame
