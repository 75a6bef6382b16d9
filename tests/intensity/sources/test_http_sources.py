"""The HTTP sources against a real server on 127.0.0.1 serving the APIs' recorded payload shapes.

Payloads come from ../shared/data/carbon/api-examples (tests skip without it) or are written here, small.
"""

import base64
import json

import numpy as np
import pytest
from werkzeug import Response

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import get_source
from carbon_pipe.timeutil import parse_instant

from ...conftest import CARBON_DATA

EXAMPLES = CARBON_DATA / "api-examples"
LBS = 0.45359237


def example(relative: str):
    path = EXAMPLES / relative
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def carbon(httpserver, source: str, path: str = "", **settings) -> CarbonParams:
    section = {"base_url": httpserver.url_for(path).rstrip("/"), "timeout": "2s", "retries": 0, **settings}
    return CarbonParams.model_validate({"sources": [source], source: section})


def at(text: str) -> float:
    return parse_instant(text)


# -- UK Carbon Intensity -------------------------------------------------------------------------------------


def test_uk_national_forecast_uses_the_forecast_where_no_actual_exists(httpserver):
    httpserver.expect_request("/intensity/2023-03-14T03:31Z/fw48h").respond_with_json(
        example("uk-carbon-intensity/GET_intensity_2023-03-14T03-31Z_fw48h.real-truncated-8-of-96.json")
    )
    series = get_source(carbon(httpserver, "uk")).series(at("2023-03-14T03:31Z"), at("2023-03-14T09:00Z"))
    assert series.start == at("2023-03-14T03:30Z") and series.end == at("2023-03-14T07:30Z")
    assert series.values.tolist() == [69, 72, 69, 72, 74, 80, 83, 84]
    assert series.is_forecast.all() and "8 of 8 half-hours have no actual yet" in series.notes[0]
    assert series.source == "uk" and series.region == "national"


def test_uk_national_prefers_the_actual(httpserver):
    payload = example("uk-carbon-intensity/GET_intensity_2023-03-14T03-31Z_pt24h.real.json")
    httpserver.expect_request("/intensity/2023-03-13T03:30Z/fw48h").respond_with_json(payload)
    series = get_source(carbon(httpserver, "uk")).series(at("2023-03-13T03:30Z"), at("2023-03-14T03:30Z"))
    slots = [slot["intensity"] for slot in payload["data"]]
    assert series.values.tolist() == [s["forecast"] if s["actual"] is None else s["actual"] for s in slots]
    assert series.values[0] == 64 != slots[0]["forecast"]  # the actual, not the forecast 52
    assert series.is_forecast.tolist() == [s["actual"] is None for s in slots]
    assert series.is_forecast.sum() == 1 and "1 of 48 half-hours have no actual yet" in series.notes[0]


def test_uk_longer_windows_use_the_from_to_endpoint(httpserver):
    slots = [
        {
            "from": f"2024-03-0{1 + h // 48}T{(h % 48) // 2:02d}:{30 * (h % 2):02d}Z",
            "intensity": {"forecast": 100 + h, "actual": None},
        }
        for h in range(150)
    ]
    for slot, after in zip(slots, slots[1:] + [{"from": "2024-03-04T03:00Z"}]):
        slot["to"] = after["from"]
    httpserver.expect_request("/intensity/2024-03-01T00:00Z/2024-03-04T03:00Z").respond_with_json({"data": slots})
    series = get_source(carbon(httpserver, "uk")).series(at("2024-03-01T00:00Z"), at("2024-03-04T03:00Z"))
    assert len(series.values) == 150 and series.end == at("2024-03-04T03:00Z")


@pytest.mark.parametrize(
    "example_file, region, path, first",
    [
        (
            "GET_regional_intensity_from_fw48h_regionid_id.shape-example.json",  # `data` is an object
            "3", "/regional/intensity/2018-01-20T12:00Z/fw48h/regionid/3", 266,
        ),
        (
            "GET_regional_regionid_13.real-2021-12-13.json",  # `data` is a list holding the region
            "13", "/regional/intensity/2021-12-13T16:30Z/fw48h/regionid/13", 435,
        ),
        (
            "GET_regional_intensity_from_fw48h.docs-example.json",  # every region in each slot
            "3", "/regional/intensity/2018-01-20T12:00Z/fw48h/regionid/3", 266,
        ),
    ],
)
def test_uk_regional_shapes(httpserver, example_file, region, path, first):
    payload = example(f"uk-carbon-intensity/{example_file}")
    httpserver.expect_request(path).respond_with_json(payload)
    moment = at(path.split("/")[3])
    series = get_source(carbon(httpserver, "uk", region=region)).series(moment, moment + 1800)
    assert series.values.tolist() == [first] and series.is_forecast.all()
    assert series.region == region and "forecasts only" in series.notes[0]


def test_uk_regional_by_postcode(httpserver):
    slots = [
        {"from": "2024-03-01T12:00Z", "to": "2024-03-01T12:30Z", "intensity": {"forecast": 0, "index": "very low"}},
        {"from": "2024-03-01T12:30Z", "to": "2024-03-01T13:00Z", "intensity": {"forecast": 31, "index": "low"}},
    ]
    payload = {
        "data": {
            "regionid": 12,
            "dnoregion": "SSE South",
            "shortname": "South England",
            "postcode": "RG10",
            "data": slots,
        }
    }
    httpserver.expect_request("/regional/intensity/2024-03-01T12:00Z/fw48h/postcode/RG10").respond_with_json(payload)
    series = get_source(carbon(httpserver, "uk", region="rg10")).series(
        at("2024-03-01T12:00Z"), at("2024-03-01T13:00Z")
    )
    assert series.values.tolist() == [0, 31]  # zero is a value
    assert "South England" in series.notes[0]


def test_uk_error_body_is_reported(httpserver):
    httpserver.expect_request("/regional/intensity/2024-03-01T12:00Z/fw48h/regionid/17").respond_with_json(
        example("uk-carbon-intensity/error_400.real.json"), status=400
    )
    with pytest.raises(
        Exception, match=r"uk: GET http://localhost:\d+/regional/.*: HTTP 400: Please enter a valid region ID"
    ):
        get_source(carbon(httpserver, "uk", region=17)).series(at("2024-03-01T12:00Z"), at("2024-03-01T13:00Z"))


# -- Electricity Maps ----------------------------------------------------------------------------------------


@pytest.fixture
def em_token(monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "em-test-token")
    return "em-test-token"


def test_electricitymaps_forecast_sends_the_token_and_stops_at_a_hole(httpserver, em_token):
    httpserver.expect_request(
        "/v3/carbon-intensity/forecast", query_string="zone=DK-DK2", headers={"auth-token": em_token}
    ).respond_with_json(example("electricitymaps-v3/GET_carbon-intensity_forecast.json"))
    source = get_source(carbon(httpserver, "electricitymaps", "/v3", zone="DK-DK2"))
    series = source.series(at("2018-11-26T17:00Z"), at("2018-11-27T17:00Z"))
    # 17:00 and 18:00 hold an hour each; the next point is two days later: a hole, not a 47-hour value.
    assert series.values.tolist() == [326, 297] and series.end == at("2018-11-26T19:00Z")
    assert series.is_forecast.all() and series.region == "DK-DK2"


def test_electricitymaps_past_range_for_older_windows(httpserver, em_token):
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json({"zone": "DE", "forecast": []})
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_json(
        example("electricitymaps-v3/GET_carbon-intensity_past-range.json")
    )
    source = get_source(carbon(httpserver, "electricitymaps", "/v3", zone="DE"))
    series = source.series(at("2019-05-21T21:00Z"), at("2019-05-21T23:00Z"))
    assert series.values.tolist() == [339, 317] and not series.is_forecast.any()
    request = httpserver.log[-1][0]
    assert request.args["zone"] == "DE" and request.args["end"].startswith("2019-05-21T23:00")


def test_electricitymaps_history_and_latest_before_the_forecast(httpserver, em_token):
    def entries(hours, values):
        return [
            {"carbonIntensity": v, "datetime": f"2024-03-01T{h:02d}:00:00.000Z", "isEstimated": h == 10}
            for h, v in zip(hours, values)
        ]

    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json(
        {"zone": "FR", "forecast": entries([12, 13, 14], [999, 40, 30])}
    )
    httpserver.expect_request("/v3/carbon-intensity/history").respond_with_json(
        {"zone": "FR", "history": entries([10, 11], [60, 50])}
    )
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json({"zone": "FR", **entries([12], [45])[0]})
    series = get_source(carbon(httpserver, "electricitymaps", "/v3", zone="FR")).series(
        at("2024-03-01T10:30Z"), at("2024-03-01T15:00Z")
    )
    assert series.values.tolist() == [60, 50, 45, 40, 30]  # the latest actual beats the forecast's 999 for 12:00
    assert series.is_forecast.tolist() == [False, False, False, True, True]
    assert "1 past hours are Electricity Maps estimates" in series.notes


def test_electricitymaps_without_a_token_fails_clearly(monkeypatch, httpserver):
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    with pytest.raises(Exception, match=r"\$ELECTRICITYMAPS_API_TOKEN is not set"):
        get_source(carbon(httpserver, "electricitymaps", "/v3"))


# -- WattTime ------------------------------------------------------------------------------------------------


@pytest.fixture
def wt_login(monkeypatch):
    monkeypatch.setenv("WATTTIME_USERNAME", "wt-user")
    monkeypatch.setenv("WATTTIME_PASSWORD", "wt-secret")
    return "Basic " + base64.b64encode(b"wt-user:wt-secret").decode()


def test_watttime_logs_in_converts_units_and_reads_the_signal_index(httpserver, wt_login):
    httpserver.expect_request("/login", headers={"Authorization": wt_login}).respond_with_json(
        example("watttime-v3/GET_login.response.json")
    )
    bearer = {"Authorization": "Bearer abcd1234"}
    forecast = example("watttime-v3/GET_v3_forecast.response.json")
    httpserver.expect_request("/v3/forecast", headers=bearer).respond_with_json(forecast)
    httpserver.expect_request("/v3/signal-index", headers=bearer).respond_with_json(
        example("watttime-v3/GET_v3_signal-index.response.json")
    )
    source = get_source(carbon(httpserver, "watttime"))
    series = source.series(at("2022-07-15T00:00Z"), at("2022-07-15T00:10Z"))
    assert series.values == pytest.approx([p["value"] * LBS for p in forecast["data"]])
    assert np.diff(series.boundaries).tolist() == [300, 300] and series.is_forecast.all()
    assert "marginal" in series.notes[0] and "This is just an example" in series.notes[1]
    assert source.details()["signal_index_percentile"] == 96.0
    assert [entry[0].path for entry in httpserver.log].count("/login") == 1  # the token was reused
    query = httpserver.log[1][0].args
    assert query["region"] == "CAISO_NORTH" and query["signal_type"] == "co2_moer" and query["horizon_hours"] == "1"


def test_watttime_historical_fills_the_past(httpserver, wt_login):
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    httpserver.expect_request("/v3/forecast").respond_with_json(
        {
            "data": [{"point_time": "2022-07-15T00:10:00+00:00", "value": 100}],
            "meta": {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 300},
        }
    )
    httpserver.expect_request("/v3/historical").respond_with_json(example("watttime-v3/GET_v3_historical.response.json"))
    series = get_source(carbon(httpserver, "watttime")).series(at("2022-07-15T00:00Z"), at("2022-07-15T00:15Z"))
    assert series.values == pytest.approx([870 * LBS, 860 * LBS, 100 * LBS])
    assert series.is_forecast.tolist() == [False, False, True]


def test_watttime_logs_in_again_when_the_token_expires(httpserver, wt_login):
    tokens = iter(["old", "new"])
    httpserver.expect_request("/login").respond_with_handler(
        lambda request: Response(json.dumps({"token": next(tokens)}), content_type="application/json")
    )
    forecast = example("watttime-v3/GET_v3_forecast.response.json")

    def forecast_for_fresh_tokens(request):
        if request.headers.get("Authorization") != "Bearer new":
            return Response(json.dumps({"error": "token expired"}), status=401, content_type="application/json")
        return Response(json.dumps(forecast), content_type="application/json")

    httpserver.expect_request("/v3/forecast").respond_with_handler(forecast_for_fresh_tokens)
    series = get_source(carbon(httpserver, "watttime")).series(at("2022-07-15T00:00Z"), at("2022-07-15T00:10Z"))
    assert len(series.values) == 2
    assert [entry[0].path for entry in httpserver.log] == ["/login", "/v3/forecast", "/login", "/v3/forecast"]


def test_watttime_refuses_percentiles_as_intensities(httpserver, wt_login):
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    httpserver.expect_request("/v3/forecast").respond_with_json(example("watttime-v3/GET_v3_signal-index.response.json"))
    with pytest.raises(Exception, match="meta.units is 'percentile'"):
        get_source(carbon(httpserver, "watttime")).series(at("2024-06-18T18:40Z"), at("2024-06-18T19:00Z"))


def test_watttime_scope_error_is_one_line(httpserver, wt_login):
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    httpserver.expect_request("/v3/forecast").respond_with_json(
        example("watttime-v3/error_invalid_scope.response.json"), status=403
    )
    with pytest.raises(Exception, match=r"watttime: GET .*/v3/forecast: HTTP 403: Invalid scope") as caught:
        get_source(carbon(httpserver, "watttime", region="PSCO")).series(
            at("2024-06-18T18:40Z"), at("2024-06-18T19:00Z")
        )
    assert "\n" not in str(caught.value) and "wt-secret" not in str(caught.value)


def test_a_server_echoing_the_token_in_its_error_does_not_leak_it(httpserver, em_token):
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json(
        {"message": f"token {em_token} has no access to zone DE"}, status=403
    )
    with pytest.raises(SourceError) as caught:
        get_source(carbon(httpserver, "electricitymaps", "/v3", zone="DE")).series(
            at("2024-03-01T12:00Z"), at("2024-03-01T13:00Z")
        )
    assert "HTTP 403: token [redacted] has no access" in str(caught.value) and em_token not in str(caught.value)


def test_redirects_are_not_followed_so_the_token_stays_home(httpserver, em_token):
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_data(
        "", status=302, headers={"Location": "http://elsewhere.invalid/steal"}
    )
    with pytest.raises(SourceError, match="HTTP 302 redirect, not followed"):
        get_source(carbon(httpserver, "electricitymaps", "/v3", zone="DE")).series(
            at("2024-03-01T12:00Z"), at("2024-03-01T13:00Z")
        )
    assert len(httpserver.log) == 1
