"""Carbon-intensity traces and issued forecasts from CSV files, as strict as a user deserves: bad rows are named.

Canonical trace columns are `timestamp,carbon_intensity` (ISO-8601; UTC when a time has no offset; gCO2/kWh). A
`TraceFormat` (config/carbon.py: params' `carbon.csv` section names one) gives other columns and units, and presets
load the files in ../shared/data/carbon directly; the `auto` format picks the one preset whose columns the file
has. Each point holds from its timestamp to the next one; the last holds for the median step. A hole longer than
`max_gap` is refused rather than bridged with a reading that was never measured there, and so is any value that is
not an intensity (negative, infinite, absurd).

Forecast files hold vintages: one row per (issue time, target time, forecast value), as published at the time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..artifacts import read_csv
from ..config.carbon import PRESETS, TraceFormat
from ..errors import UsageError
from ..timeutil import LAST_EPOCH_SECOND, format_duration
from .series import MAX_INTENSITY, IntensitySeries

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
# By default a hole is refused when longer than MAX_GAP_STEPS median steps and MIN_DEFAULT_GAP: a regular trace's
# missing rows, not the long even stretches of a trace written as change points (a row where the value changes).
MAX_GAP_STEPS, MIN_DEFAULT_GAP = 4, 3 * 3600.0


@dataclass(frozen=True)
class ForecastFormat:
    issued_column: str = "issued_at"
    target_column: str = "target_time"
    value_column: str = "carbon_intensity"
    unit: Literal["g_per_kwh", "lbs_per_mwh"] = "g_per_kwh"


FORECAST_PRESETS: dict[str, ForecastFormat] = {
    "canonical": ForecastFormat(),
    # nmpowell/carbon-intensity-forecast-tracking, as assembled in uk-carbon-intensity-forecasts/
    "uk-vintages": ForecastFormat("issued_at_utc", "target_from_utc", "forecast_gco2_kwh"),
    # vessim's WattTime CAISO_NORTH MOER forecasts, lbs/MWh
    "watttime-caiso": ForecastFormat("request_time", "forecast_time", "Caiso_North", unit="lbs_per_mwh"),
}


@dataclass(frozen=True)
class ForecastVintages:
    """Issued forecasts, sorted by (issued, target): epoch seconds and gCO2/kWh."""

    issued: np.ndarray
    target: np.ndarray
    values: np.ndarray
    origin: str


def _to_g_per_kwh(values: np.ndarray, unit: str) -> np.ndarray:
    return values * (LBS_PER_MWH_TO_G_PER_KWH if unit == "lbs_per_mwh" else 1.0)


def _pick_format(frame: pd.DataFrame, fmt, presets: dict, origin: str, kind: str):
    """A format object, a preset name, or 'auto': the one preset whose columns the file has."""
    if not isinstance(fmt, str):
        return fmt
    if fmt == "auto":
        columns = set(map(str, frame.columns))
        fitting = [name for name, preset in presets.items() if _needed_columns(preset) <= columns]
        if len(fitting) != 1:
            found = "no preset fits" if not fitting else f"several presets fit ({', '.join(fitting)})"
            raise UsageError(f"{origin}: cannot tell the {kind} format: {found}; name one of: {', '.join(presets)}")
        return presets[fitting[0]]
    if fmt not in presets:
        raise UsageError(f"unknown {kind} format {fmt!r} (known: auto, {', '.join(presets)})")
    return presets[fmt]


def _needed_columns(fmt: TraceFormat | ForecastFormat) -> set[str]:
    return {value for key, value in vars(fmt).items() if key.endswith("_column")}


def _row(values: pd.Series, position: int) -> int:
    """The file's line number of a row: the header is line 1, and dropped rows keep their numbers."""
    return int(values.index[position]) + 2


def parse_times(values: pd.Series, origin: str) -> np.ndarray:
    """Times -> epoch seconds, in years 1970 to 9999. Numbers are UNIX seconds; strings are ISO-8601, UTC unless
    they carry an offset. A missing time or one outside that range is an error naming its row."""
    missing = values.isna().to_numpy().nonzero()[0]
    if len(missing):
        raise UsageError(f"{origin}: row {_row(values, missing[0])}: {values.name} is missing")
    numeric = pd.api.types.is_numeric_dtype(values)
    if numeric:
        seconds = values.to_numpy(dtype=float)
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy().nonzero()[0]
        if len(bad):
            raise UsageError(f"{origin}: row {_row(values, bad[0])}: cannot parse time {values.iloc[bad[0]]!r}")
        # Through microseconds: pandas' default nanoseconds end in 2262, and would fail on a later time.
        seconds = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6
    outside = (~((seconds >= 0) & (seconds < LAST_EPOCH_SECOND))).nonzero()[0]
    if len(outside):
        first = outside[0]
        problem = (
            f"{seconds[first]:g} is not a UNIX time in seconds (years 1970 to 9999; milliseconds need dividing by 1000)"
            if numeric
            else f"{values.iloc[first]!r} is outside the years 1970 to 9999"
        )
        raise UsageError(f"{origin}: row {_row(values, first)}: {values.name} {problem}")
    return seconds


def _intensities(values: pd.Series, unit: str, origin: str) -> np.ndarray:
    """Numbers -> gCO2/kWh, each from 0 to MAX_INTENSITY: infinities, negatives and absurd values name their row."""
    intensity = _to_g_per_kwh(values.to_numpy(dtype=float), unit)
    bad = (~((intensity >= 0) & (intensity <= MAX_INTENSITY))).nonzero()[0]
    if len(bad):
        first = bad[0]
        raise UsageError(
            f"{origin}: row {_row(values, first)}: {values.name} is {values.iloc[first]:g}"
            f"{' lbs/MWh' if unit == 'lbs_per_mwh' else ''}, not an intensity (0 to {MAX_INTENSITY:g} g/kWh)"
        )
    return intensity


def _check_gaps(times: np.ndarray, rows: np.ndarray, max_gap: float | None, origin: str) -> float:
    """The median step; a hole longer than `max_gap` (by default the larger of MAX_GAP_STEPS median steps and
    MIN_DEFAULT_GAP) is refused, since the reading before it would be held across it as if it were measured."""
    steps = np.diff(times)
    median = float(np.median(steps))
    limit = max(MAX_GAP_STEPS * median, MIN_DEFAULT_GAP) if max_gap is None else max_gap
    too_long = (steps > limit).nonzero()[0]
    if len(too_long):
        first = too_long[0]
        default = (
            f" (default: {MAX_GAP_STEPS} x the median step {format_duration(median)}, "
            f"at least {format_duration(MIN_DEFAULT_GAP)})"
        )
        default = default if max_gap is None else ""
        raise UsageError(
            f"{origin}: row {rows[first + 1]}: {format_duration(steps[first])} after the row before, longer than "
            f"max_gap {format_duration(limit)}{default}; set max_gap to hold the last value across it"
        )
    return median


def frame_to_series(
    frame: pd.DataFrame, fmt: TraceFormat, origin: str, source: str = "csv", region: str = ""
) -> IntensitySeries:
    """Validate a trace table and turn it into a contiguous series. `origin` names the file in errors."""
    for column in (fmt.time_column, fmt.value_column):
        if column not in frame.columns:
            raise UsageError(f"{origin}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    values = pd.to_numeric(frame[fmt.value_column], errors="coerce")
    missing = values.isna().to_numpy()
    if missing.any() and not fmt.drop_missing:
        row = int(missing.nonzero()[0][0])
        raise UsageError(
            f"{origin}: row {row + 2}: {fmt.value_column} is missing or not a number "
            f"({frame[fmt.value_column].iloc[row]!r})"
        )
    frame, values = frame[~missing], values[~missing]
    times = parse_times(frame[fmt.time_column], origin)
    intensity = _intensities(values, fmt.unit, origin)
    rows = frame.index.to_numpy() + 2
    if fmt.sort:
        order = np.argsort(times, kind="stable")
        times, intensity, rows = times[order], intensity[order], rows[order]
    steps = np.diff(times)
    if np.any(steps < 0):
        row = int(np.nonzero(steps < 0)[0][0]) + 1
        raise UsageError(f"{origin}: row {rows[row]}: timestamps out of order (set sort to accept)")
    if np.any(steps == 0):
        if not fmt.deduplicate:
            row = int(np.nonzero(steps == 0)[0][0]) + 1
            raise UsageError(f"{origin}: row {rows[row]}: duplicated timestamp (set deduplicate to keep the last)")
        keep = np.append(steps != 0, True)
        times, intensity, rows = times[keep], intensity[keep], rows[keep]
    if len(times) < 2:
        raise UsageError(f"{origin}: needs at least two rows with values to know the interval length")
    step = _check_gaps(times, rows, fmt.max_gap, origin)
    return IntensitySeries(
        boundaries=np.append(times, times[-1] + step),
        values=intensity,
        is_forecast=np.zeros(len(times), dtype=bool),
        source=source,
        region=region,
    )


def detect_format(path: str | Path) -> TraceFormat:
    """The one preset whose columns the trace file has (the `auto` format)."""
    return _pick_format(read_csv(path, "trace"), "auto", PRESETS, str(path), "trace")


def load_trace(
    path: str | Path,
    fmt: TraceFormat | str = "canonical",
    source: str = "csv",
    region: str = "",
    max_gap: float | None = None,
) -> IntensitySeries:
    """Read a trace CSV; `fmt` is a TraceFormat, the name of a preset, or 'auto'. `max_gap` (seconds) overrides the
    format's: math.inf holds the last reading across any hole, as the backtest does."""
    frame = read_csv(path, "trace")
    fmt = _pick_format(frame, fmt, PRESETS, str(path), "trace")
    if max_gap is not None:
        fmt = dataclasses.replace(fmt, max_gap=max_gap)
    return frame_to_series(frame, fmt, str(path), source, region or Path(path).stem)


def load_forecasts(path: str | Path, fmt: ForecastFormat | str = "auto") -> ForecastVintages:
    """Read issued forecast vintages; every row needs an issue time, a target time and a value."""
    frame = read_csv(path, "forecast")
    origin = str(path)
    fmt = _pick_format(frame, fmt, FORECAST_PRESETS, origin, "forecast")
    for column in sorted(_needed_columns(fmt)):
        if column not in frame.columns:
            raise UsageError(f"{origin}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})")
    numbers = pd.to_numeric(frame[fmt.value_column], errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().nonzero()[0][0])
        raise UsageError(
            f"{origin}: row {row + 2}: {fmt.value_column} is missing or not a number "
            f"({frame[fmt.value_column].iloc[row]!r})"
        )
    if len(numbers) == 0:
        raise UsageError(f"{origin}: no forecast rows")
    values = _intensities(numbers, fmt.unit, origin)
    issued = parse_times(frame[fmt.issued_column], origin)
    target = parse_times(frame[fmt.target_column], origin)
    order = np.lexsort((target, issued))
    issued, target, values = issued[order], target[order], values[order]
    repeated = (np.diff(issued) == 0) & (np.diff(target) == 0)
    if repeated.any():
        row = int(order[int(repeated.nonzero()[0][0]) + 1])
        raise UsageError(f"{origin}: row {row + 2}: a second forecast for the same issue and target time")
    return ForecastVintages(issued, target, values, origin)
