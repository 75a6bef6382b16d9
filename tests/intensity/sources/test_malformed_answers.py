"""An answer a source cannot parse or validate is that source's recorded failure, then the next source of the chain:
deep nesting, numbers no float holds, a period that is not a number, absurd intensities. In a
one-off look (`plan`, `intensity`), through the chain, and mid-wait: never a traceback that loses the decision."""

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import fetch_series, get_source
from carbon_pipe.intensity.sources.uk import UkSource
from carbon_pipe.layout import DECISION_JSON
from carbon_pipe.timeutil import parse_instant

from ...conftest import default_params, write_params
from ...fake_servers import json_answer

START = parse_instant("2024-03-01T12:00:00Z")
END = START + 2 * 3600


def uk_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def uk_body(values: list[str], first: float = START, step: float = 1800) -> str:
    """A UK national answer with each value written as given (JSON no encoder would write: 10**400 digit by digit)."""
    slots = [
        f'{{"from": "{uk_time(first + step * i)}", "to": "{uk_time(first + step * (i + 1))}", '
        f'"intensity": {{"forecast": {v}, "actual": null}}}}'
        for i, v in enumerate(values)
    ]
    return '{"data": [' + ", ".join(slots) + "]}"


NESTED = "[" * 200_000 + "]" * 200_000
UK_CASES = {
    "nested brackets": (NESTED, r"uk: GET \S+: invalid JSON in the response \(nested too deeply\)"),
    "10**400": (
        uk_body(["100", str(10**400)]),
        r"uk: unexpected response: data\[1\]\.intensity\.forecast is 1000000000000000\.\.\., "
        r"not an intensity \(0 to 10000 g/kWh\)",
    ),
    "1e308": (
        uk_body(["100", "1e308", "1e308"]),
        r"data\[1\]\.intensity\.forecast is 1e\+308, not an intensity \(0 to 10000 g/kWh\)",
    ),
    "a 5000-digit number": (uk_body(["9" * 5000]), r"uk: GET \S+: invalid JSON in the response$"),
}


def uk_carbon(url: str, *sources: str, **carbon) -> CarbonParams:
    return CarbonParams.model_validate(
        {"sources": list(sources or ["uk"]), "uk": {"base_url": url, "retries": 0}, **carbon}
    )


@pytest.mark.slow
@pytest.mark.parametrize("body, message", UK_CASES.values(), ids=UK_CASES.keys())
def test_a_uk_answer_that_cannot_be_read_fails_the_source_then_the_chain_goes_on(fake_api, body, message):
    fake_api.on("/intensity/", json_answer(body))
    with pytest.raises(SourceError, match=message):
        get_source(uk_carbon(fake_api.url)).series(START, END)
    fetched = fetch_series(uk_carbon(fake_api.url, "uk", "mock"), START, END, END)
    assert fetched.series.source == "mock" and fetched.failures[0].source == "uk"
    assert "uk: " in fetched.failures[0].error and len(fetched.failures) == 1


def watttime_forecast(meta: dict) -> dict:
    points = [
        {"point_time": datetime.fromtimestamp(START + 300 * i, tz=timezone.utc).isoformat(), "value": 500}
        for i in range(30)
    ]
    return {"data": points, "meta": {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 300, **meta}}


@pytest.mark.slow
@pytest.mark.parametrize(
    "meta, message",
    [
        (
            {"data_point_period_seconds": "abc"},
            r"meta\.data_point_period_seconds is 'abc', not a period in seconds \(over 0, up to 86400\)",
        ),
        ({"data_point_period_seconds": -300}, r"meta\.data_point_period_seconds is -300, not a period"),
        ({"data_point_period_seconds": 1e300}, r"meta\.data_point_period_seconds is 1e\+300, not a period"),
        ({"warnings": 5}, r"meta\.warnings is int, expected a list"),
    ],
    ids=["text", "negative", "huge", "warnings-not-a-list"],
)
def test_a_watttime_meta_that_cannot_be_read_fails_the_source(fake_api, monkeypatch, meta, message):
    monkeypatch.setenv("WATTTIME_USERNAME", "user")
    monkeypatch.setenv("WATTTIME_PASSWORD", "password")
    fake_api.on("/login", json_answer({"token": "t0k3n"}))
    fake_api.on("/v3/forecast", json_answer(watttime_forecast(meta)))
    carbon = CarbonParams.model_validate(
        {"sources": ["watttime", "mock"], "watttime": {"base_url": fake_api.url, "retries": 0}}
    )
    with pytest.raises(SourceError, match=rf"watttime: unexpected response: {message}"):
        get_source(carbon).series(START, END)
    assert fetch_series(carbon, START, END, END).series.source == "mock"


def test_a_watttime_signal_index_no_float_holds_is_a_detail_error_not_a_failure(fake_api, monkeypatch):
    monkeypatch.setenv("WATTTIME_USERNAME", "user")
    monkeypatch.setenv("WATTTIME_PASSWORD", "password")
    fake_api.on("/login", json_answer({"token": "t0k3n"}))
    fake_api.on("/v3/forecast", json_answer(watttime_forecast({})))
    fake_api.on(
        "/v3/signal-index",
        json_answer('{"data": [{"point_time": "2024-03-01T12:00:00+00:00", "value": 1' + "0" * 400 + '}], "meta": {}}'),
    )
    carbon = CarbonParams.model_validate(
        {"sources": ["watttime"], "watttime": {"base_url": fake_api.url, "retries": 0}}
    )
    fetched = fetch_series(carbon, START, END, END, with_details=True)
    assert fetched.series.source == "watttime"
    assert "data[0].value is 1000000000000000..., not a percentile" in fetched.details["signal_index_error"]


def test_an_unexpected_error_inside_a_source_is_its_recorded_failure(monkeypatch):
    """The chain's last guard, for a parser's blind spot no test has found yet: the source's failure, not a crash."""

    def blind_spot(self, start, end):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(UkSource, "series", blind_spot)
    carbon = uk_carbon("http://127.0.0.1:9", "uk", "mock")
    fetched = fetch_series(carbon, START, END, END)
    assert fetched.series.source == "mock"
    assert fetched.failures[0].error == "uk: the answer could not be used (ZeroDivisionError: float division by zero)"
    with pytest.raises(SourceError, match=r"^uk: the answer could not be used \(ZeroDivisionError"):
        fetch_series(carbon.model_copy(update={"fallback": False}), START, END, END)


def carbon_pipe(folder, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_plan_with_a_chain_tries_the_next_source_after_an_unreadable_answer(workspace, fake_api):
    fake_api.on("/intensity/", json_answer(NESTED))
    raw = default_params()
    raw["scheduler"].update(now="2024-03-01T12:00:00Z")
    write_params(workspace, raw)
    planned = carbon_pipe(workspace, "plan", "--json", "--source", "uk,mock", "--base-url", fake_api.url)
    assert planned.returncode == 0 and "Traceback" not in planned.stderr, planned.stderr
    shown = json.loads(planned.stdout)
    assert shown["source"] == "mock" and "nested too deeply" in shown["source_failures"][0]["error"]
    alone = carbon_pipe(workspace, "plan", "--source", "uk", "--base-url", fake_api.url)
    assert alone.returncode == 1 and len(alone.stderr.strip().splitlines()) == 1 and "nested too deeply" in alone.stderr


@pytest.mark.slow
def test_a_replan_that_gets_an_unreadable_answer_keeps_the_plan_on_record(workspace, fake_api):
    """The real command on the wall clock: the first answer plans a start ~8 s ahead; every re-plan gets 10**400."""
    first = int(time.time()) // 5 * 5 - 60
    values = ["400"] * 60
    dip = (int(time.time()) + 8 - first) // 5
    values[dip] = "100"
    good = uk_body(values, first, step=5)
    bad = uk_body([str(10**400)] * 60, first, step=5)
    fake_api.on("/intensity/", json_answer(good), json_answer(bad))
    raw = default_params()
    raw["carbon"].update(sources=["uk"], horizon="2min")
    raw["carbon"]["uk"].update(base_url=fake_api.url, retries=0)
    raw["scheduler"].update(clock="real", max_wait="20s", expected_duration="5s", replan_interval="1s")
    write_params(workspace, raw)
    waited = carbon_pipe(workspace, "wait-for-window", timeout=90)
    assert waited.returncode == 0 and "Traceback" not in waited.stderr, waited.stderr
    decision = json.loads((workspace / DECISION_JSON).read_text())
    assert decision["horizon"]["source"] == "uk" and not decision["interrupted"]
    assert parse_instant(decision["start"]) >= first + 5 * dip - 0.5  # the dip the first answer showed, kept
    assert decision["replan_failures"] and all("not an intensity" in failure for failure in decision["replan_failures"])
    assert len(fake_api.requests) >= 3
