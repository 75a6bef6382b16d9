"""The csv source: a trace file served through the same interface, and the GB 2020 trace planned on."""

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from carbon_pipe.cli import app
from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import fetch_series, get_source
from carbon_pipe.scheduling import planner
from carbon_pipe.timeutil import parse_instant

from ...conftest import CARBON_DATA

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


HOURLY_WITH_A_73H_HOLE = "timestamp,carbon_intensity\n" + "".join(
    f"{moment},{value}\n"
    for moment, value in [("2024-01-01T00:00Z", 300), ("2024-01-01T01:00Z", 310), ("2024-01-01T02:00Z", 90),
                          ("2024-01-04T03:00Z", 280), ("2024-01-04T04:00Z", 270)]
)


def test_a_hole_in_the_trace_fails_the_source_unless_max_gap_allows_it(tmp_path):
    """Before, the 90 at 02:00 was served for 73 hours: a plan would have waited for a value nobody measured."""
    trace = tmp_path / "holes.csv"
    trace.write_text(HOURLY_WITH_A_73H_HOLE)
    chain = {"sources": ["csv", "mock"], "csv": {"path": str(trace)}}
    fetched = fetch_series(
        CarbonParams.model_validate(chain), parse_instant("2024-01-01T00:00Z"), parse_instant("2024-01-02T00:00Z"), 0
    )
    assert fetched.series.source == "mock"
    assert fetched.failures[0].error.endswith(
        "row 5: 73h after the row before, longer than max_gap 4h (default: 4 x the median step 1h, at least 3h); "
        "set max_gap to hold the last value across it"
    )
    allowed = CarbonParams.model_validate({**chain, "csv": {"path": str(trace), "max_gap": "3d2h"}})
    series = fetch_series(allowed, parse_instant("2024-01-01T00:00Z"), parse_instant("2024-01-02T00:00Z"), 0).series
    assert series.source == "csv" and series.at(parse_instant("2024-01-02T12:00Z")) == 90  # held, as asked


@pytest.mark.parametrize(
    "contents, message",
    [
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,inf\n",
            "row 3: carbon_intensity is inf, not an intensity",
        ),
        ("timestamp,carbon_intensity\n1704067200,1\n,2\n1704074400,3\n", "row 3: timestamp is missing"),
        ("timestamp,carbon_intensity\n1704067200,1\n1e17,2\n", "row 3: timestamp 1e+17 is not a UNIX time in seconds"),
        (None, "not a trace file (a folder)"),
    ],
    ids=["inf", "empty-time", "epoch-1e17", "a-folder"],
)
def test_an_unreadable_trace_is_the_csv_sources_recorded_failure(tmp_path, contents, message):
    trace = tmp_path / "trace.csv"
    if contents is None:
        trace.mkdir()
    else:
        trace.write_text(contents)
    params = CarbonParams.model_validate({"sources": ["csv", "mock"], "csv": {"path": str(trace)}})
    fetched = fetch_series(params, 1704067200.0, 1704070800.0, 1704070800.0)
    assert fetched.series.source == "mock" and message in fetched.failures[0].error


def test_backtest_refuses_values_no_grid_has_and_holds_across_holes(tmp_path):
    """Two 1e308 readings made the backtest report savings 0.0 with a NaN mean; now one line, exit 2. Holes are held
    there, as the backtest's Semantics (docs/backtest.md) say, so the 73 h one is no error."""
    trace = tmp_path / "trace.csv"
    hours = [f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00Z,{200 + (h * 37) % 90}" for h in range(24 * 4)]
    trace.write_text(
        "timestamp,carbon_intensity\n"
        + "\n".join(hours[:30] + ["2024-01-02T06:00Z,1e308", "2024-01-02T07:00Z,1e308"] + hours[32:])
        + "\n"
    )
    refused = CliRunner().invoke(app, ["backtest", "--trace", str(trace), "--policy", "oracle", "--json"])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert (
        refused.stderr.strip()
        == f"carbon-pipe: error: {trace}: row 32: carbon_intensity is 1e+308, not an intensity (0 to 10000 g/kWh)"
    )
    trace.write_text("timestamp,carbon_intensity\n" + "\n".join(hours[:10] + hours[83:]) + "\n")
    held = CliRunner().invoke(app, ["backtest", "--trace", str(trace), "--policy", "oracle", "--json", "--slack", "2h"])
    assert held.exit_code == 0, held.stderr
