"""`plan` and `intensity` outside a project: no params file (the defaults, the real clock), `--trace` in any format
the backtest reads, a duration with its unit, and `duration_source` saying where the duration came from."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from carbon_pipe.timeutil import iso, parse_instant

from ..conftest import CARBON_DATA
from ..fake_servers import json_answer

LWA_GB = CARBON_DATA / "lets-wait-awhile" / "gb_ci.csv"
HALF_HOUR = 1800


def carbon_pipe(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carbon_pipe.cli", *args], cwd=folder, capture_output=True, text=True)


def planned(folder, *args: str) -> dict:
    result = carbon_pipe(folder, "plan", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lwa_trace(path, first: float, values: list[float]) -> None:
    """A trace in Let's Wait Awhile's format (Time,Carbon Intensity, naive UTC), half-hourly from `first`."""
    stamps = [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(first + i * HALF_HOUR)) for i in range(len(values))]
    rows = [f"{stamp},{value}" for stamp, value in zip(stamps, values)]
    path.write_text("Time,Carbon Intensity\n" + "\n".join(rows) + "\n")


@pytest.mark.slow
def test_a_trace_in_lets_wait_awhiles_format_plans_on_the_real_clock_without_params(tmp_path):
    first = time.time() // HALF_HOUR * HALF_HOUR - HALF_HOUR
    values = [400.0] * 48
    values[10:13] = [100.0, 100.0, 100.0]  # the one clean 90 minutes, 4.5 to 6 hours from the first point
    lwa_trace(tmp_path / "trace.csv", first, values)
    before = time.time()
    plan = planned(tmp_path, "--duration", "90min", "--max-wait", "12h", "--trace", "trace.csv")
    assert plan["clock"] == "real" and before <= parse_instant(plan["now"]) <= time.time()
    assert plan["start"] == iso(first + 10 * HALF_HOUR) and plan["expected_mean_intensity"] == 100
    assert (plan["duration_seconds"], plan["duration_source"], plan["duration_basis"]) == (5400, "option", "--duration")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["trace.csv"]  # it wrote nothing


@pytest.mark.slow
def test_without_a_duration_option_the_default_is_named_as_the_source(tmp_path):
    lwa_trace(tmp_path / "trace.csv", time.time() // HALF_HOUR * HALF_HOUR - HALF_HOUR, [300.0] * 60)
    plan = planned(tmp_path, "--trace", "trace.csv")
    assert (plan["duration_seconds"], plan["duration_source"]) == (600, "params")


@pytest.mark.slow
@pytest.mark.skipif(not LWA_GB.is_file(), reason="needs ../shared/data/carbon")
def test_a_trace_of_the_past_is_planned_from_the_last_moment_it_covers_and_says_so(tmp_path):
    result = carbon_pipe(tmp_path, "plan", "--json", "--duration", "90min", "--max-wait", "12h", "--trace", str(LWA_GB))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    # gb_ci.csv ends 2021-01-10T00:00Z: 13.5 hours before that is the last "now" with the whole wait and job in it
    assert (plan["clock"], plan["now"]) == ("simulated", "2021-01-09T10:30:00.000000Z")
    assert plan["source"] == "csv" and plan["region"] == "gb_ci"
    [note] = result.stderr.strip().splitlines()
    assert note.startswith("carbon-pipe: note: ") and "not now: looking from 2021-01-09T10:30" in note


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--duration", "--max-wait"])
def test_a_duration_without_its_unit_is_refused_with_the_unit_suggested(tmp_path, option):
    result = carbon_pipe(tmp_path, "plan", option, "90")
    assert result.returncode == 2
    expected = f"carbon-pipe: error: {option}: 90 has no unit; write 90min (or 90s, 90h)"
    assert result.stderr.strip().splitlines() == [expected]


def uk_forecast(first: float, values: list[float]) -> dict:
    def slot(i: int, value: float) -> dict:
        moment = first + i * HALF_HOUR
        return {
            "from": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(moment)),
            "to": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(moment + HALF_HOUR)),
            "intensity": {"forecast": value, "actual": None, "index": "moderate"},
        }

    return {"data": [slot(i, value) for i, value in enumerate(values)]}


@pytest.mark.slow
def test_the_uk_source_plans_and_shows_intensity_in_an_empty_folder(tmp_path, fake_api):
    first = time.time() // HALF_HOUR * HALF_HOUR
    values = [250.0] * 96
    values[20:23] = [90.0, 90.0, 90.0]
    fake_api.on("/intensity/", json_answer(uk_forecast(first, values)))
    source = ["--source", "uk", "--base-url", fake_api.url]
    plan = planned(tmp_path, *source, "--duration", "90min", "--max-wait", "12h")
    assert (plan["clock"], plan["source"], plan["start"]) == ("real", "uk", iso(first + 20 * HALF_HOUR))
    shown = carbon_pipe(tmp_path, "intensity", "--json", *source)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["current_intensity"] == 250
    assert fake_api.requests and all(path.startswith("/intensity/") for path in fake_api.requests)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_params_file_named_but_missing_is_still_an_error(tmp_path):
    result = carbon_pipe(tmp_path, "plan", "--params", "mine.yaml")
    assert result.returncode == 2 and "mine.yaml: no such params file" in result.stderr
