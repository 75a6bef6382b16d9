"""The backtest's files: jobs CSV in (strict, naming the row of a bad value) and out, per-job results, and one
backtest run from files, as the command runs it.

A jobs file has one row per job: `arrival` and `duration`, and either `deadline` (latest finish) or `slack` (how long
it may wait); optionally `id`, `nominal_start` (when a carbon-unaware scheduler would start it; default the
arrival) and `interruptible` (true/false; without the column every job may be interrupted). Times are ISO-8601
(UTC when they carry no offset); durations read like `4h`, `1h30min`, `5400` (seconds) or SLURM's `[D-]HH:MM:SS`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..artifacts import output_file, read_csv, write_rows
from ..errors import CarbonPipeError, FieldError, UsageError
from ..timeutil import LAST_EPOCH_SECOND, format_duration, parse_duration
from .jobs import JobTable
from .runner import Report, Setup, run
from .tables import PER_JOB_COLUMNS, iso_utc, per_job_rows
from .workload import AdHoc, Periodic, Sweep, adhoc, periodic, sweep

COLUMNS = ("id", "arrival", "duration", "deadline", "slack", "nominal_start", "interruptible")
_SLURM_ELAPSED = re.compile(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})")
_TRUE, _FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n"}


def load_jobs(path: str | Path) -> JobTable:
    """Read and check a jobs file; a bad value is one line naming the file, the row and the column."""
    import pandas as pd

    origin = str(path)
    frame = read_csv(path, "jobs", dtype=str, keep_default_na=False, skipinitialspace=True)
    for column in map(str, frame.columns):  # pandas renames a repeated column 'id' to 'id.1'
        repeated = re.fullmatch(r"(.+)\.\d+", column)
        if repeated and repeated[1] in frame.columns:
            raise UsageError(f"{origin}: column {repeated[1]!r} appears twice in the header")
    unknown = [str(column) for column in frame.columns if column not in COLUMNS]
    if unknown:
        raise UsageError(f"{origin}: unknown column {unknown[0]!r} (known: {', '.join(COLUMNS)})")
    for needed in ("arrival", "duration"):
        if needed not in frame.columns:
            raise UsageError(f"{origin}: no column {needed!r}")
    if len(frame) == 0:
        raise UsageError(f"{origin}: no jobs")
    rows = _Rows(frame, origin)
    arrival, duration = rows.times("arrival"), rows.durations("duration")
    deadline = _deadlines(rows, arrival, duration)
    nominal_given = rows.given("nominal_start")
    nominal = (
        np.where(nominal_given, rows.times("nominal_start", nominal_given), arrival) if nominal_given.any() else arrival
    )
    rows.check(nominal < arrival, "nominal_start", "is before the arrival")
    rows.check(nominal + duration > deadline, "nominal_start", "leaves no room to finish by the deadline")
    ids = frame["id"].to_numpy(dtype=str) if "id" in frame.columns else (np.arange(len(frame)) + 2).astype(str)
    repeated = pd.Series(ids).duplicated().to_numpy()
    rows.check(repeated, "id", "appears twice")
    return JobTable(ids, arrival, duration, deadline, nominal, rows.flags("interruptible"), origin)


def _deadlines(rows: "_Rows", arrival: np.ndarray, duration: np.ndarray) -> np.ndarray:
    has_deadline, has_slack = rows.given("deadline"), rows.given("slack")
    rows.check(has_deadline & has_slack, "deadline", "give a deadline or a slack, not both")
    rows.check(~has_deadline & ~has_slack, "deadline", "missing (give a deadline or a slack)")
    deadline = np.zeros(len(arrival))
    if has_deadline.any():
        deadline[has_deadline] = rows.times("deadline", has_deadline)[has_deadline]
    if has_slack.any():
        slack = rows.durations("slack", has_slack, positive=False)
        deadline[has_slack] = (arrival + duration + slack)[has_slack]
    rows.check(deadline < arrival + duration, "deadline", "leaves no room for the job between its arrival and deadline")
    return deadline


class _Rows:
    """Column parsers that name the first bad row (its line in the file: the header is line 1)."""

    def __init__(self, frame, origin: str) -> None:
        self.frame, self.origin = frame, origin

    def fail(self, index: int, column: str, problem: str):
        value = self.frame[column].iloc[index] if column in self.frame else ""
        raise UsageError(f"{self.origin}: row {index + 2}: {column} {value!r}: {problem}")

    def check(self, bad: np.ndarray, column: str, problem: str) -> None:
        if bad.any():
            self.fail(int(np.flatnonzero(bad)[0]), column, problem)

    def given(self, column: str) -> np.ndarray:
        if column not in self.frame:
            return np.zeros(len(self.frame), dtype=bool)
        return self.frame[column].str.strip().ne("").to_numpy()

    def times(self, column: str, given=None) -> np.ndarray:
        """Epoch seconds where `given` (default: every row, each of which must hold a time); NaN elsewhere."""
        import pandas as pd

        if given is None:
            self.check(~self.given(column), column, "missing")
            given = np.ones(len(self.frame), dtype=bool)
        text = self.frame[column].str.strip().where(given)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        self.check(parsed.isna().to_numpy() & given, column, "not an ISO-8601 time")
        # Through microseconds, as a trace's times: nanoseconds end in 2262 (an overflow, not a message).
        seconds = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6
        seconds[~given] = np.nan
        self.check(
            given & ~((seconds >= 0) & (seconds < LAST_EPOCH_SECOND)), column, "is outside the years 1970 to 9999"
        )
        return seconds

    def durations(self, column: str, given=None, positive: bool = True) -> np.ndarray:
        text = self.frame[column].str.strip()
        known = {value: _duration(value) for value in text.unique()}
        seconds = text.map(known).to_numpy(dtype=float)
        bad = np.isnan(seconds) & (True if given is None else given)
        self.check(bad, column, "not a duration (use e.g. 4h, 1h30min, 5400 or 1-02:00:00)")
        self.check(
            seconds <= 0 if positive else seconds < 0,
            column,
            "must be positive" if positive else "must not be negative",
        )
        return seconds

    def flags(self, column: str) -> np.ndarray:
        if column not in self.frame:
            return np.ones(len(self.frame), dtype=bool)
        text = self.frame[column].str.strip().str.lower()
        self.check(~text.isin(_TRUE | _FALSE).to_numpy(), column, "not true or false")
        return text.isin(_TRUE).to_numpy()


def _duration(text: str) -> float:
    """Seconds, or NaN when the text is not a duration."""
    slurm = _SLURM_ELAPSED.fullmatch(text)
    if slurm:
        days, hours, minutes, seconds = (int(part or 0) for part in slurm.groups())
        return days * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds
    try:
        return parse_duration(text) if text else float("nan")
    except ValueError:
        return float("nan")


def write_jobs(path: str | Path, table: JobTable) -> None:
    """A jobs file `load_jobs` reads back to the same jobs, written atomically."""
    durations = {seconds: format_duration(seconds) for seconds in np.unique(table.duration)}
    columns = (
        table.ids,
        iso_utc(table.arrival),
        [durations[d] for d in table.duration],
        iso_utc(table.deadline),
        iso_utc(table.nominal),
        np.where(table.interruptible, "true", "false"),
    )
    write_rows(path, ("id", "arrival", "duration", "deadline", "nominal_start", "interruptible"), zip(*columns))


def write_workload(path: str | Path, spec: Periodic | AdHoc | Sweep) -> int:
    """Generate a workload and write it as a jobs file; the number of jobs."""
    output_file(path, "jobs")
    make = {Periodic: periodic, AdHoc: adhoc, Sweep: sweep}[type(spec)]
    try:
        table = make(spec, str(path))
    except OverflowError:  # a calendar rule stepping past year 9999
        raise FieldError(
            "period", "jobs would fall after the year 9999: move the period or shorten the spans"
        ) from None
    write_jobs(path, table)
    return len(table)


def write_per_job(path: str | Path, report: Report) -> None:
    """One row per job, policy and forecast draw: where it ran, how long it waited, what it emitted at 1 kW."""
    write_rows(path, PER_JOB_COLUMNS, per_job_rows(report))


def run_files(
    trace: Path, trace_format: str, setup: Setup, forecasts: Optional[Path] = None, forecast_format: str = "auto",
    jobs: Optional[Path] = None, per_job: Optional[Path] = None, capacity: Optional[int] = None,
):  # fmt: skip
    """Load the trace, the issued forecasts and the jobs file given, backtest, and write the per-job file if asked.
    With a capacity, the policies of many jobs sharing that many workers (capacity_report.py) instead.

    Inputs too large for the memory there is are one line, not a MemoryError.
    """
    from ..intensity.traces import load_forecasts, load_trace

    if per_job is not None:
        output_file(per_job, "per-job results")
    loaded: dict = {}
    try:
        loaded["series"] = load_trace(trace, trace_format, max_gap=math.inf)  # held across holes (see Semantics)
        vintages = load_forecasts(forecasts, forecast_format) if forecasts is not None else None
        loaded["table"] = load_jobs(jobs) if jobs is not None else None
        if capacity is not None:
            from .capacity_report import run_capacity

            return run_capacity(loaded["series"], setup, capacity, vintages, loaded["table"])
        report = run(loaded["series"], setup, vintages, loaded["table"])
    except MemoryError:
        raise CarbonPipeError(f"backtest: not enough memory for {_size(loaded, trace)}; {_TOO_BIG}") from None
    if per_job is not None:
        write_per_job(per_job, report)
    return report


_TOO_BIG = (
    "use a shorter trace, fewer jobs or shorter job windows (rolling and interruptible need memory growing with the "
    "window squared)"
)


def _size(loaded: dict, trace: Path) -> str:
    """What was being backtested, as far as it got loaded."""
    if "series" not in loaded:
        return f"reading {trace}"
    size = f"{len(loaded['series'].values)} trace points"
    table = loaded.get("table")
    if table is not None:
        longest = format_duration(float((table.deadline - table.arrival).max()))
        size += f" and {len(table)} jobs, the longest window {longest}"
    return size
