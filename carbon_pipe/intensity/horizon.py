"""The scheduling horizon as wait-for-window leaves it: when the job was submitted, where the intensities came from,
and the series itself. The train stages charge their energy from it and compare re-derives its numbers from it.
"""

from __future__ import annotations

import pandas as pd

from ..artifacts import read_json, write_csv, write_json
from ..errors import ArtifactError
from ..layout import HORIZON_JSON, INTENSITY_CSV
from .series import IntensitySeries

HORIZON_KEYS = ("source", "region", "clock", "now", "series_notes", "source_chain", "source_failures")


def write_horizon(decision: dict, series: IntensitySeries) -> None:
    write_csv(INTENSITY_CSV, series.to_frame())
    write_json(HORIZON_JSON, {key: decision[key] for key in HORIZON_KEYS})


def load_horizon() -> tuple[dict, IntensitySeries]:
    """The intensity series the scheduler saw, and when the job was submitted, as wait-for-window wrote them."""
    horizon = read_json(HORIZON_JSON)
    try:
        frame = pd.read_csv(INTENSITY_CSV)
    except FileNotFoundError:
        raise ArtifactError(f"{INTENSITY_CSV} is missing: run wait-for-window first") from None
    return horizon, IntensitySeries.from_frame(frame, horizon["source"], horizon["region"], tuple(horizon["series_notes"]))
