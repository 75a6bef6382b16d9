"""CSV traces: canonical and preset formats, and a clear line for every bad row."""

import math

import numpy as np
import pytest

from carbon_pipe.config.carbon import TraceFormat
from carbon_pipe.errors import UsageError
from carbon_pipe.intensity.traces import load_forecasts, load_trace
from carbon_pipe.timeutil import parse_instant

from ..conftest import CARBON_DATA


def write(tmp_path, text, name="trace.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_canonical_trace_is_utc_and_piecewise_constant(tmp_path):
    path = write(
        tmp_path,
        "timestamp,carbon_intensity\n2024-01-01T00:00:00,100\n2024-01-01T01:00:00+01:00,200\n2024-01-01T01:00Z,300\n",
    )
    with pytest.raises(UsageError, match="row 3: duplicated timestamp"):
        load_trace(path)  # 01:00+01:00 is 00:00Z: the same instant as row 2
    path = write(
        tmp_path,
        "timestamp,carbon_intensity\n2024-01-01T00:00:00,100\n2024-01-01T00:30:00Z,200\n2024-01-01T02:30:00+01:00,0\n",
    )
    series = load_trace(path)
    assert series.values.tolist() == [100, 200, 0]  # an intensity of 0 is a value, not "missing"
    assert (series.boundaries - series.boundaries[0]).tolist() == [0, 1800, 5400, 8100]  # last holds the median step


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,nan\n",
            "row 3: carbon_intensity is missing",
        ),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\nyesterday,2\n", "row 3: cannot parse time 'yesterday'"),
        ("timestamp,carbon_intensity\n2024-01-01T02:00Z,1\n2024-01-01T01:00Z,2\n", "row 3: timestamps out of order"),
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,-4\n",
            r"row 3: carbon_intensity is -4, not an intensity \(0 to 10000 g/kWh\)",
        ),
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,inf\n",
            r"row 3: carbon_intensity is inf, not an intensity \(0 to 10000 g/kWh\)",
        ),
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1e308\n2024-01-01T01:00Z,1e308\n",
            r"row 2: carbon_intensity is 1e\+308, not an intensity",
        ),
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,20000\n",
            r"row 3: carbon_intensity is 20000, not an intensity",
        ),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n,2\n2024-01-01T02:00Z,3\n", "row 3: timestamp is missing"),
        ("timestamp,carbon_intensity\n1704067200,1\n,2\n1704074400,3\n", "row 3: timestamp is missing"),
        (
            "timestamp,carbon_intensity\n1704067200,1\n1e12,2\n",
            r"row 3: timestamp 1e\+12 is not a UNIX time in seconds "
            r"\(years 1970 to 9999; milliseconds need dividing by 1000\)",
        ),
        (
            "timestamp,carbon_intensity\n1704067200,1\n1e17,2\n",
            r"row 3: timestamp 1e\+17 is not a UNIX time in seconds",
        ),
        (
            "timestamp,carbon_intensity\n-1e17,1\n1704067200,2\n",
            r"row 2: timestamp -1e\+17 is not a UNIX time in seconds",
        ),
        (
            "timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,2\n2024-01-01T02:00Z,3\n"
            "2024-01-04T03:00Z,4\n2024-01-04T04:00Z,5\n",
            r"row 5: 73h after the row before, longer than max_gap 4h "
            r"\(default: 4 x the median step 1h, at least 3h\); set max_gap to hold the last value across it",
        ),
        (
            "timestamp,carbon_intensity\n1969-12-31T00:00Z,1\n2024-01-01T01:00Z,2\n",
            r"row 2: timestamp '1969-12-31T00:00Z' is outside the years 1970 to 9999",
        ),
        ("time,value\n2024-01-01T00:00Z,1\n", "no column 'timestamp'"),
        ("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n", "needs at least two rows"),
    ],
)
def test_bad_rows_are_named(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        load_trace(write(tmp_path, body))


def test_times_past_2262_read_as_they_do_as_numbers(tmp_path):
    """Pandas' nanosecond times end in 2262; a later ISO time crashed parse_times
    (OutOfBoundsDatetime) though the loader's range goes to 9999."""
    hours = [10413792000 + 3600 * h for h in range(3)]  # 2300-01-01T00:00Z onwards
    as_text = load_trace(write(tmp_path, "timestamp,carbon_intensity\n2300-01-01T00:00Z,1\n2300-01-01T01:00Z,2\n"
                                          "2300-01-01T02:00:00.25+00:00,3\n"))
    assert as_text.boundaries[:3].tolist() == [hours[0], hours[1], hours[2] + 0.25]
    last = load_trace(write(tmp_path, "timestamp,carbon_intensity\n9999-12-31T22:00Z,1\n9999-12-31T23:00Z,2\n"))
    assert last.boundaries[-1] == 253402300800.0  # 10000-01-01: the last point ends where the range does


def test_a_folder_is_not_a_trace(tmp_path):
    with pytest.raises(UsageError, match=rf"^{tmp_path}: not a trace file \(a folder\)$"):
        load_trace(tmp_path)


def test_max_gap_decides_how_long_a_reading_may_be_held(tmp_path):
    """Rows an hour apart around a 5 h hole: refused by default (4 x the median step, at least 3 h), held when
    allowed."""
    path = write(
        tmp_path,
        "timestamp,carbon_intensity\n" + "".join(f"2024-01-01T{h:02d}:00Z,{h}\n" for h in (0, 1, 2, 3, 4, 9, 10)),
    )
    with pytest.raises(
        UsageError,
        match=r"row 7: 5h after the row before, longer than max_gap 4h "
        r"\(default: 4 x the median step 1h, at least 3h\)",
    ):
        load_trace(path)
    series = load_trace(path, TraceFormat(max_gap=5 * 3600))
    assert series.at(parse_instant("2024-01-01T08:00Z")) == 4  # held over the hole, as asked
    with pytest.raises(UsageError, match=r"row 7: 5h after the row before, longer than max_gap 4h59min; set max_gap"):
        load_trace(path, TraceFormat(max_gap=5 * 3600 - 60))
    assert load_trace(path, max_gap=math.inf).values.tolist() == [0, 1, 2, 3, 4, 9, 10]  # the backtest's choice


def test_options_name_columns_units_and_repair_scraped_feeds(tmp_path):
    path = write(
        tmp_path, "when,moer\n2024-01-01 00:05,100\n2024-01-01 00:00,200\n2024-01-01 00:05,300\n2024-01-01 00:10,\n"
    )
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
    series = load_trace(path, preset, max_gap=math.inf if preset == "electricitymaps-scrape" else None)
    assert mean[0] < series.values.mean() < mean[1]


def test_the_scrapes_holes_are_refused_unless_max_gap_allows_them():
    """The Electricity Maps scrapes miss days at a time (GB: 31 h at most), which a plan must not read as one value."""
    path = CARBON_DATA / "electricitymaps-api-scrape" / "GB.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with pytest.raises(
        UsageError,
        match=r"GB.csv: row \d+: \d+h after the row before, longer than max_gap 4h "
        r"\(default: 4 x the median step 1h, at least 3h\)",
    ):
        load_trace(path, "electricitymaps-scrape")
    assert len(load_trace(path, "electricitymaps-scrape", max_gap=31 * 3600).values) > 9000


@pytest.mark.parametrize(
    "relative, preset",
    [
        ("lets-wait-awhile/fr_ci.csv", "lets-wait-awhile"),
        ("electricitymaps-api-scrape/SE.csv", "electricitymaps-scrape"),
        ("watttime-caiso-north/watttime2023_caiso-north_actual.csv", "watttime-caiso"),
        ("uk-carbon-intensity-forecasts/gb_national_actuals_2023-03-14_2023-03-19.csv", "uk-actuals"),
    ],
)
def test_auto_picks_the_preset_whose_columns_the_file_has(relative, preset):
    path = CARBON_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    held = math.inf if preset == "electricitymaps-scrape" else None
    np.testing.assert_array_equal(
        load_trace(path, "auto", max_gap=held).values, load_trace(path, preset, max_gap=held).values
    )


def test_auto_refuses_a_file_no_preset_fits(tmp_path):
    with pytest.raises(UsageError, match="cannot tell the trace format: no preset fits"):
        load_trace(write(tmp_path, "when,value\n2024-01-01T00:00Z,1\n"), "auto")


def test_forecast_vintages_load_sorted_and_in_g_per_kwh(tmp_path):
    path = write(
        tmp_path,
        "request_time,forecast_time,Caiso_North\n2024-01-01 00:05,2024-01-01 00:10,200\n"
        "2024-01-01 00:00,2024-01-01 00:10,100\n2024-01-01 00:00,2024-01-01 00:05,300\n",
    )
    vintages = load_forecasts(path)  # auto: the WattTime columns
    assert (vintages.issued - vintages.issued[0]).tolist() == [0, 0, 300]
    assert (vintages.target - vintages.issued[0]).tolist() == [300, 600, 600]
    assert vintages.values.tolist() == pytest.approx([300 * 0.45359237, 100 * 0.45359237, 200 * 0.45359237])


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "issued_at,target_time,carbon_intensity\n2024-01-01T00:00Z,2024-01-01T01:00Z,\n",
            "row 2: carbon_intensity is missing",
        ),
        (
            "issued_at,target_time,carbon_intensity\n2024-01-01T00:00Z,2024-01-01T01:00Z,1\n2024-01-01T00:00Z,2024-01-01T01:00Z,2\n",
            "row 3: a second forecast for the same issue and target time",
        ),
        ("issued_at,target_time,carbon_intensity\nsoon,2024-01-01T01:00Z,1\n", "row 2: cannot parse time 'soon'"),
        (
            "issued_at,target_time,carbon_intensity\n2024-01-01T00:00Z,2024-01-01T01:00Z,inf\n",
            "row 2: carbon_intensity is inf, not an intensity",
        ),
        (
            "issued_at,target_time,carbon_intensity\n2024-01-01T00:00Z,1e15,100\n",
            r"row 2: target_time 1e\+15 is not a UNIX time in seconds",
        ),
    ],
)
def test_bad_forecast_rows_are_named(tmp_path, body, message):
    with pytest.raises(UsageError, match=message):
        load_forecasts(write(tmp_path, body, "forecasts.csv"), "canonical")


def test_real_forecast_vintages_load():
    path = CARBON_DATA / "uk-carbon-intensity-forecasts" / "gb_national_forecast_vintages_2023-03-14_2023-03-18.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    vintages = load_forecasts(path)
    assert len(np.unique(vintages.issued)) == 33 and len(vintages.values) == 33 * 96
