"""The csv source: a trace file served through the same interface, and the GB 2020 trace planned on."""

import numpy as np
import pytest
from pydantic import ValidationError

from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.settings import CarbonParams
from carbon_pipe.intensity.sources import fetch_series, get_source
from carbon_pipe.scheduling import planner
from carbon_pipe.timeutil import parse_instant

from .conftest import CARBON_DATA

GB_TRACE = CARBON_DATA / "lets-wait-awhile" / "gb_ci.csv"


def csv_params(path, **csv) -> CarbonParams:
    return CarbonParams.model_validate({"sources": ["csv"], "csv": {"path": str(path), **csv}})


def test_a_trace_is_cut_to_the_request(tmp_path):
    trace = tmp_path / "grid.csv"
    trace.write_text("when,gco2\n2024-01-01T00:00Z,100\n2024-01-01T01:00Z,0\n2024-01-01T02:00Z,300\n2024-01-01T03:00Z,50\n")
    source = get_source(csv_params(trace, time_column="when", value_column="gco2", region="test-grid"))
    series = source.series(parse_instant("2024-01-01T00:30Z"), parse_instant("2024-01-01T02:00Z"))
    assert series.values.tolist() == [100, 0] and series.start == parse_instant("2024-01-01T00:00Z")
    assert series.region == "test-grid" and "perfect forecast" in series.notes[0]
    with pytest.raises(
        SourceError, match="covers 2024-01-01T00:00:00.000000Z to 2024-01-01T04:00:00.000000Z, not 2023"
    ):
        source.series(parse_instant("2023-12-31T00:00Z"), parse_instant("2024-01-01T00:00Z"))


def test_bad_trace_settings_fall_back_on_record(tmp_path):
    params = CarbonParams.model_validate({"sources": ["csv", "mock"], "csv": {"path": str(tmp_path / "missing.csv")}})
    fetched = fetch_series(params, 0.0, 3600.0, 3600.0)
    assert fetched.series.source == "mock" and "no such trace file" in fetched.failures[0].error
    with pytest.raises(ValidationError, match="unknown preset 'mystery'"):  # a typo is a params error, not a fallback
        csv_params(tmp_path / "x.csv", preset="mystery")


def test_gb_2020_week_flexible_interruptible_threshold():
    if not GB_TRACE.is_file():
        pytest.skip(f"{GB_TRACE} not found")
    source = get_source(csv_params(GB_TRACE, preset="lets-wait-awhile"))
    now = parse_instant("2020-03-02T08:00Z")
    series = source.series(now, now + 7 * 86400)
    assert np.all(np.diff(series.boundaries) <= 1800) and series.region == "gb_ci"
    flexible = planner.lowest_mean_start(series, now, now + 24 * 3600, 4 * 3600)
    interruptible = planner.interruptible_plan(series, now, now + 28 * 3600, 4 * 3600, min_chunk=3600)
    threshold = planner.threshold_start(series, now, now + 24 * 3600, 4 * 3600, threshold=200)
    assert interruptible.expected_mean_intensity <= flexible.expected_mean_intensity <= flexible.now_mean_intensity
    assert flexible.expected_mean_intensity <= threshold.expected_mean_intensity
