"""`carbon-pipe intensity` and `carbon-pipe plan` against local servers that mimic each API; then with the
server gone (the fallback is used and reported) and with fallback off (one error line, non-zero exit)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from carbon_pipe.cli import app

from ..conftest import default_params, write_params
from ..intensity.sources.test_http_sources import example

LBS = 0.45359237


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def project(workspace, now: str, carbon: dict | None = None, **scheduler) -> None:
    raw = default_params()
    raw["scheduler"].update(now=now, max_wait="2h", expected_duration="30min", **scheduler)
    raw["carbon"].update(horizon="3h", **(carbon or {}))
    write_params(workspace, raw)


def as_json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_uk_national_intensity_and_plan(workspace, httpserver):
    httpserver.expect_request("/intensity/2023-03-14T03:31Z/fw48h").respond_with_json(
        example("uk-carbon-intensity/GET_intensity_2023-03-14T03-31Z_fw48h.real-truncated-8-of-96.json")
    )
    project(workspace, "2023-03-14T03:31:00Z", {"sources": ["uk", "mock"]})
    url = httpserver.url_for("").rstrip("/")
    shown = as_json(invoke("intensity", "--json", "--base-url", url))
    assert (shown["source"], shown["region"], shown["current_intensity"]) == ("uk", "national", 69)
    assert shown["now"] == "2023-03-14T03:31:00.000000Z" and shown["source_failures"] == []
    assert [p["carbon_intensity"] for p in shown["forecast"]] == [69, 72, 69, 72, 74, 80, 83]  # to now + 3 h
    assert shown["forecast"][0] == {
        "timestamp": "2023-03-14T03:30:00.000000Z",
        "carbon_intensity": 69,
        "interval_seconds": 1800,
        "is_forecast": True,
    }
    planned = as_json(invoke("plan", "--json", "--base-url", url))
    # The 04:30 slot is a whole half-hour at 69; starting now overlaps one minute of the 72 slot.
    assert planned["start"] == "2023-03-14T04:30:00.000000Z" and planned["end"] == "2023-03-14T05:00:00.000000Z"
    assert planned["expected_mean_intensity"] == 69
    assert planned["now_mean_intensity"] == pytest.approx((29 * 69 + 72) / 30)
    assert planned["saving_vs_now_pct"] == pytest.approx(100 * (1 - 69 / ((29 * 69 + 72) / 30)))
    assert planned["mode"] == "flexible" and planned["source"] == "uk"
    text = invoke("intensity", "--base-url", url)
    assert text.exit_code == 0 and text.stdout.startswith("uk national: 69 gCO2/kWh now")


def test_uk_regional_intensity_and_plan(workspace, httpserver):
    httpserver.expect_request("/regional/intensity/2021-12-13T16:30Z/fw48h/regionid/13").respond_with_json(
        example("uk-carbon-intensity/GET_regional_regionid_13.real-2021-12-13.json")
    )
    project(workspace, "2021-12-13T16:30:00Z", {"sources": ["uk"]})
    url = httpserver.url_for("").rstrip("/")
    shown = as_json(invoke("intensity", "--json", "--base-url", url, "--region", "13"))
    assert (shown["region"], shown["current_intensity"], len(shown["forecast"])) == ("13", 435, 1)
    slots = [("2024-03-01T12:00Z", "2024-03-01T12:30Z", 250), ("2024-03-01T12:30Z", "2024-03-01T13:00Z", 180)]
    slots += [
        (
            f"2024-03-01T{13 + i // 2}:{30 * (i % 2):02d}Z",
            f"2024-03-01T{13 + (i + 1) // 2}:{30 * ((i + 1) % 2):02d}Z",
            90 + 40 * i,
        )
        for i in range(6)
    ]
    regional = {
        "data": {
            "regionid": 6,
            "shortname": "Scotland",
            "data": [{"from": f, "to": t, "intensity": {"forecast": v, "index": "low"}} for f, t, v in slots],
        }
    }
    httpserver.expect_request("/regional/intensity/2024-03-01T12:00Z/fw48h/regionid/6").respond_with_json(regional)
    project(workspace, "2024-03-01T12:00:00Z", {"sources": ["uk"]})
    planned = as_json(invoke("plan", "--json", "--base-url", url, "--region", "6", "--duration", "1h"))
    # Hour-long windows: from 12:00 (250 + 180) / 2 = 215, 12:30 135, 13:00 (90 + 130) / 2 = 110, 13:30 150, ...
    assert planned["start"] == "2024-03-01T13:00:00.000000Z" and planned["expected_mean_intensity"] == 110
    assert planned["now_mean_intensity"] == 215 and planned["region"] == "6"


def test_electricitymaps_intensity_and_plan(workspace, httpserver, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "em-secret-123")
    hours = [(12, 300), (13, 250), (14, 120), (15, 160), (16, 400)]
    forecast = {
        "zone": "DE",
        "forecast": [{"carbonIntensity": v, "datetime": f"2024-03-01T{h}:00:00.000Z"} for h, v in hours],
    }
    httpserver.expect_request(
        "/v3/carbon-intensity/forecast", query_string="zone=DE", headers={"auth-token": "em-secret-123"}
    ).respond_with_json(forecast)
    project(workspace, "2024-03-01T12:00:00Z", {"sources": ["electricitymaps"], "electricitymaps": {"zone": "DE"}})
    url = httpserver.url_for("/v3").rstrip("/")
    shown = as_json(invoke("intensity", "--json", "--base-url", url))
    assert (shown["source"], shown["region"], shown["current_intensity"]) == ("electricitymaps", "DE", 300)
    assert [p["carbon_intensity"] for p in shown["forecast"]] == [300, 250, 120]  # the 3 h horizon
    planned = as_json(invoke("plan", "--json", "--base-url", url, "--duration", "1h"))
    assert planned["start"] == "2024-03-01T14:00:00.000000Z" and planned["expected_mean_intensity"] == 120
    assert planned["saving_vs_now_pct"] == pytest.approx(60)
    assert "em-secret-123" not in json.dumps(shown) + json.dumps(planned)


def test_watttime_intensity_and_plan(workspace, httpserver, monkeypatch):
    monkeypatch.setenv("WATTTIME_USERNAME", "alice")
    monkeypatch.setenv("WATTTIME_PASSWORD", "wt-pass-456")
    httpserver.expect_request("/login").respond_with_json({"token": "bearer-xyz"})
    points = [
        {"point_time": f"2024-03-01T{12 + m // 60}:{m % 60:02d}:00+00:00", "value": 500 - (200 if 60 <= m < 90 else 0)}
        for m in range(0, 180, 5)
    ]
    body = {
        "data": points,
        "meta": {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 300, "region": "CAISO_NORTH"},
    }
    httpserver.expect_request("/v3/forecast", headers={"Authorization": "Bearer bearer-xyz"}).respond_with_json(body)
    httpserver.expect_request("/v3/signal-index").respond_with_json(example("watttime-v3/GET_v3_signal-index.response.json"))
    project(workspace, "2024-03-01T12:00:00Z", {"sources": ["watttime"]})
    url = httpserver.url_for("").rstrip("/")
    shown = as_json(invoke("intensity", "--json", "--base-url", url))
    assert shown["current_intensity"] == pytest.approx(500 * LBS) and shown["signal_index_percentile"] == 96
    assert len(shown["forecast"]) == 36
    planned = as_json(invoke("plan", "--json", "--base-url", url))
    assert planned["start"] == "2024-03-01T13:00:00.000000Z" and planned["expected_mean_intensity"] == pytest.approx(
        300 * LBS
    )
    assert "wt-pass-456" not in json.dumps(shown) + json.dumps(planned)


def test_with_the_server_gone_the_fallback_serves_and_is_reported(workspace, unused_port):
    project(workspace, "2025-01-15T18:00:00Z", {"sources": ["uk", "mock"], "uk": {"retries": 1, "backoff": "0s"}})
    url = f"http://127.0.0.1:{unused_port}"
    planned = as_json(invoke("plan", "--json", "--base-url", url))
    assert planned["source"] == "mock" and planned["source_chain"] == ["uk", "mock"]
    [failure] = planned["source_failures"]
    assert (
        failure["source"] == "uk"
        and f"127.0.0.1:{unused_port}" in failure["error"]
        and "cannot connect" in failure["error"]
    )
    text = invoke("intensity", "--base-url", url)
    assert text.exit_code == 0 and "fell back: uk: GET" in text.stdout


@pytest.mark.slow
def test_with_fallback_off_one_error_line_and_a_non_zero_exit(workspace, unused_port):
    project(workspace, "2025-01-15T18:00:00Z", {"sources": ["uk", "mock"], "fallback": False, "uk": {"retries": 0}})
    for command in ("intensity", "plan"):
        result = subprocess.run(
            [sys.executable, "-m", "carbon_pipe.cli", command, "--base-url", f"http://127.0.0.1:{unused_port}"],
            cwd=workspace, capture_output=True, text=True,
        )
        assert result.returncode == 1 and result.stdout == ""
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            f"carbon-pipe: error: uk: GET http://127.0.0.1:{unused_port}/intensity/2025-01-15T18:00Z/fw48h: "
            "cannot connect"
        )


@pytest.mark.parametrize(
    "options, message",
    [
        (["--source", "nope"], "--source: Input should be"),
        (["--region", "Mars"], "--region: expected national, a region id 1-17 or a postcode"),
        (["--duration", "soon"], "--duration: invalid duration 'soon'"),
        (["--slack", "-1h"], "--max-wait: invalid duration '-1h'"),
        (["--source", "mock", "--base-url", "http://x"], "--base-url: source mock has no base URL"),
        (["--base-url", "ftp://x"], "--base-url: expected an http(s) URL"),
    ],
)
def test_bad_overrides_are_one_line(workspace, options, message):
    project(workspace, "2025-01-15T18:00:00Z", {"sources": ["uk"]})
    result = invoke("plan", *options)
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: {result.stderr.split('error: ')[1].strip()}"
    ]
    assert message in result.stderr


def test_spatial_choice_picks_the_cleaner_place_and_records_all(workspace, httpserver, monkeypatch):
    from carbon_pipe.scheduling.decision import read_decision

    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "t")
    forecast = {
        "zone": "FR",
        "forecast": [{"carbonIntensity": 40 + h, "datetime": f"2025-01-15T{18 + h}:00:00.000Z"} for h in range(6)],
    }
    httpserver.expect_request("/carbon-intensity/forecast").respond_with_json(forecast)
    project(
        workspace,
        "2025-01-15T18:00:00Z",
        {
            "sources": ["mock"],
            "alternatives": [{"source": "electricitymaps", "region": "FR"}, {"source": "uk", "region": "13"}],
            "electricitymaps": {"base_url": httpserver.url_for("").rstrip("/")},
            "uk": {"base_url": "http://127.0.0.1:9", "retries": 0},
        },
    )
    planned = as_json(invoke("plan", "--json"))
    assert (planned["source"], planned["region"], planned["expected_mean_intensity"]) == ("electricitymaps", "FR", 40)
    assert [(p["source"], p["region"], p["chosen"]) for p in planned["locations"]] == [
        ("mock", "GB", False),
        ("electricitymaps", "FR", True),
    ]
    assert planned["source_failures"][0]["source"] == "uk" and planned["source_failures"][0]["region"] == "13"
    assert invoke("wait-for-window").exit_code == 0
    decision = read_decision()
    assert [(place.source, place.region, place.chosen) for place in decision.locations] == [
        ("mock", "GB", False), ("electricitymaps", "FR", True)
    ]
    assert decision.chosen_place == 1 and decision.locations[1].start == decision.start
