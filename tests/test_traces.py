"""CSV traces: canonical and preset formats, and a clear line for every bad row."""

import pytest

from carbon_pipe.errors import UsageError
from carbon_pipe.traces import TraceFormat, load_trace

from .conftest import CARBON_DATA


def write(tmp_path, text, name="trace.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_canonical_trace_is_utc_and_piecewise_constant(tmp_path):
    path = write(tmp_path, "timestamp,carbon_intensity\n2024-01-01T00:00:00,100\n2024-01-01T01:00:00+01:00,200\n2024-01-01T01:00Z,300\n")
    with pytest.raises(UsageError, match="row 3: duplicated timestamp"):
        load_trace(path)  # 01:00+01:00 is 00:00Z: the same instant as row 2
    path = write(tmp_path, "timestamp,carbon_intensity\n2024-01-01T00:00:00,100\n2024-01-01T00:30:00Z,200\n2024-01-01T02:30:00+01:00,0\n")
    series = load_trace(path)
    assert series.values.tolist() == [100, 200, 0]  # an intensity of 0 is a value, not "missing"
    assert (series.boundaries - series.boundaries[0]).tolist() == [0, 1800, 5400, 8100]  # last holds the median step


@pytest.mark.parametrize(
    "body, message",
    [
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,nan\n", "row 3: carbon_intensity is missing"),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\nyesterday,2\n", "row 3: cannot parse time 'yesterday'"),
        ("timestamp,carbon_intensity\n2024-01-01T02:00Z,1\n2024-01-01T01:00Z,2\n", "row 3: timestamps out of order"),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,-4\n", "row 3: negative intensity -4"),
        ("time,value\n2024-01-01T00:00Z,1\n", "no column 'timestamp'"),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n", "needs at least two rows"),
    ],
)
def test_bad_rows_are_named(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        load_trace(write(tmp_path, body))


def test_options_name_columns_units_and_repair_scraped_feeds(tmp_path):
    path = write(tmp_path, "when,moer\n2024-01-01 00:05,100\n2024-01-01 00:00,200\n2024-01-01 00:05,300\n2024-01-01 00:10,\n")
    fmt = TraceFormat("when", "moer", unit="lbs_per_mwh", deduplicate=True, sort=True, drop_missing=True)
    series = load_trace(path, fmt)
    assert series.values.tolist() == pytest.approx([200 * 0.45359237, 300 * 0.45359237])


@pytest.mark.parametrize(
    "relative, preset, mean",
    [
        ("lets-wait-awhile/ger_ci.csv", "lets-wait-awhile", (300, 330)),
        ("electricitymaps-api-scrape/GB.csv", "electricitymaps-scrape", (230, 255)),
        ("watttime-caiso-north/watttime2023_caiso-north_actual.csv", "watttime-caiso", (155, 167)),
        ("uk-carbon-intensity-forecasts/gb_national_actuals_2023-03-14_2023-03-19.csv", "uk-actuals", (140, 160)),
    ],
)
def test_presets_load_the_shared_traces(relative, preset, mean):
    path = CARBON_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    series = load_trace(path, preset)
    assert mean[0] < series.values.mean() < mean[1]
