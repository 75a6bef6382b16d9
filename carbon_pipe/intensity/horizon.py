"""The horizon wait-for-window leaves for the train and compare stages: when the job was submitted, on which clock,
where the intensities came from, and the series itself (horizon.json + intensity.csv). One writer, one reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..artifacts import read_json, reason, write_csv, write_json
from ..errors import ArtifactError
from ..layout import HORIZON_JSON, INTENSITY_CSV
from ..timeutil import iso, parse_instant
from .series import IntensitySeries


@dataclass(frozen=True)
class Horizon:
    """The intensities a run is charged with, and the submission time the baseline starts at."""

    submitted: float
    clock: str  # simulated | real
    series: IntensitySeries
    source_chain: tuple[str, ...]
    source_failures: tuple[dict[str, str], ...]  # {source, region, error} of each source that failed first

    @property
    def simulated(self) -> bool:
        return self.clock == "simulated"


def write_horizon(horizon: Horizon) -> None:
    series = horizon.series
    write_csv(INTENSITY_CSV, series.to_frame())
    record = {
        "source": series.source,
        "region": series.region,
        "clock": horizon.clock,
        "now": iso(horizon.submitted),
        "series_notes": list(series.notes),
        "source_chain": list(horizon.source_chain),
        "source_failures": list(horizon.source_failures),
    }
    write_json(HORIZON_JSON, record)


def remove_horizon() -> None:
    """No horizon (a wait stopped before any plan): an earlier decision's must not outlive it."""
    HORIZON_JSON.unlink(missing_ok=True)
    INTENSITY_CSV.unlink(missing_ok=True)


def read_horizon() -> Horizon:
    """The horizon as wait-for-window wrote it; a missing or malformed file is one line naming it."""
    record = read_json(HORIZON_JSON)
    try:
        submitted, clock = parse_instant(record["now"]), record["clock"]
        if clock not in ("simulated", "real"):
            raise ValueError(f"clock {clock!r}")
        source, region, notes = str(record["source"]), str(record["region"]), tuple(record["series_notes"])
        chain, failures = tuple(record["source_chain"]), tuple(record["source_failures"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{HORIZON_JSON}: not a horizon wait-for-window wrote ({reason(exc)}): run wait-for-window again"
        ) from None
    return Horizon(submitted, clock, _read_series(source, region, notes), chain, failures)


def _read_series(source: str, region: str, notes: tuple[str, ...]) -> IntensitySeries:
    try:
        frame = pd.read_csv(INTENSITY_CSV)
        return IntensitySeries.from_frame(frame, source, region, notes)
    except FileNotFoundError:
        raise ArtifactError(f"{INTENSITY_CSV} is missing: run wait-for-window first") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{INTENSITY_CSV}: not a readable CSV ({reason(exc)}): run wait-for-window again") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a column missing, a value that is no number
        raise ArtifactError(
            f"{INTENSITY_CSV}: not the series wait-for-window wrote ({reason(exc)}): run wait-for-window again"
        ) from None

