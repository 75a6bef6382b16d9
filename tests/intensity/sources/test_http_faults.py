"""The fault matrix: every HTTP source against a real local server that times out, refuses, errs, rate-limits,
sends bad JSON, the wrong shape, no data, and the edge values zero (a value) and negative (an error)."""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import pytest
from werkzeug import Response

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.errors import SourceError
from carbon_pipe.intensity.sources import get_source
from carbon_pipe.timeutil import parse_instant

START = parse_instant("2024-03-01T12:00:00Z")
END = START + 2 * 3600


@dataclass(frozen=True)
class Api:
    """How one source is asked for [START, END), and how its answer is shaped."""

    name: str
    base_path: str
    data_path: str  # the request every series() starts with
    fill_paths: tuple[str, ...]  # what it asks next when the first answer does not reach back to START
    payload: Callable[[list[float]], Any]  # values at START, START + step, ... -> the API's JSON
    empty: Any
    wrong_shape: Any


def uk_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def uk_payload(values):
    return {
        "data": [
            {
                "from": uk_time(START + 1800 * i),
                "to": uk_time(START + 1800 * (i + 1)),
                "intensity": {"forecast": v, "actual": None, "index": "low"},
            }
            for i, v in enumerate(values)
        ]
    }


def em_payload(values):
    return {
        "zone": "GB",
        "forecast": [
            {"carbonIntensity": v, "datetime": f"2024-03-01T{12 + i:02d}:00:00.000Z"} for i, v in enumerate(values)
        ],
    }


def wt_payload(values):
    return {
        "data": [{"point_time": f"2024-03-01T12:{5 * i:02d}:00+00:00", "value": v} for i, v in enumerate(values)],
        "meta": {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 300, "region": "CAISO_NORTH", "warnings": []},
    }


APIS = [
    Api("uk", "", "/intensity/2024-03-01T12:00Z/fw48h", (), uk_payload, {"data": []}, {"data": {"unexpected": True}}),
    Api(
        "electricitymaps",
        "/v3",
        "/v3/carbon-intensity/forecast",
        ("/v3/carbon-intensity/past-range",),
        em_payload,
        {"zone": "GB", "forecast": []},
        {"zone": "GB", "forecast": "soon"},
    ),
    Api(
        "watttime",
        "",
        "/v3/forecast",
        ("/v3/historical",),
        wt_payload,
        {"data": [], "meta": {"units": "lbs_co2_per_mwh"}},
        [1, 2, 3],
    ),
]


@pytest.fixture(params=APIS, ids=[api.name for api in APIS])
def api(request, monkeypatch, httpserver):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "token")
    monkeypatch.setenv("WATTTIME_USERNAME", "user")
    monkeypatch.setenv("WATTTIME_PASSWORD", "password")
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    return request.param


def in_turn(*responses: tuple[int, Any, dict]):
    """A handler answering each request with the next (status, JSON body, headers), the last one for good."""
    queue = list(responses)

    def answer(request):
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    return answer


def source_for(api: Api, base_url: str, sleeps: list | None = None, **settings):
    section = {"base_url": base_url + api.base_path, "timeout": "0.2s", "retries": 1, "backoff": "0.001s", **settings}
    params = CarbonParams.model_validate({"sources": [api.name], api.name: section})
    options = {"sleep": sleeps.append} if sleeps is not None else {}
    return get_source(params, **options)


def server_url(httpserver) -> str:
    return httpserver.url_for("").rstrip("/")


def data_requests(httpserver, api: Api) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == api.data_path)


def test_timeout_is_retried_then_reported(api, httpserver):
    def slow(request):
        time.sleep(0.5)
        return Response("{}", content_type="application/json")

    httpserver.expect_request(api.data_path).respond_with_handler(slow)
    started = time.perf_counter()
    with pytest.raises(
        SourceError, match=rf"{api.name}: GET .*{api.data_path}: no complete answer within 0.2 s \(2 attempts\)"
    ):
        source_for(api, server_url(httpserver)).series(START, END)
    assert time.perf_counter() - started < 3


def test_connection_refused(api, unused_port):
    with pytest.raises(
        SourceError, match=rf"{api.name}: GET http://127.0.0.1:{unused_port}.*: cannot connect .*\(2 attempts\)"
    ):
        source_for(api, f"http://127.0.0.1:{unused_port}").series(START, END)


def test_server_error_is_retried_and_a_recovery_is_used(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_handler(
        in_turn((500, "boom", {}), (200, api.payload([120, 130]), {}))
    )
    sleeps: list = []
    series = source_for(api, server_url(httpserver), sleeps).series(START, END)
    assert series.values[:2].tolist() == pytest.approx(
        [120, 130] if api.name != "watttime" else [120 * 0.45359237, 130 * 0.45359237]
    )
    assert sleeps == [0.001]


def test_persistent_server_error_fails_after_the_retries(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_data("boom", status=503)
    sleeps: list = []
    with pytest.raises(SourceError, match=r"HTTP 503 \(3 attempts\)"):
        source_for(api, server_url(httpserver), sleeps, retries=2).series(START, END)
    assert sleeps == [0.001, 0.002] and data_requests(httpserver, api) == 3  # exponential backoff, bounded


def test_429_retry_after_is_honoured(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_handler(
        in_turn((429, "slow down", {"Retry-After": "7"}), (200, api.payload([100, 100]), {}))
    )
    sleeps: list = []
    source_for(api, server_url(httpserver), sleeps).series(START, END)
    assert sleeps == [7.0]  # the server's wait, not the 0.001 s backoff


def test_429_really_waits(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_handler(
        in_turn((429, "", {"Retry-After": "0.1"}), (200, api.payload([100, 100]), {}))
    )
    started = time.perf_counter()
    source_for(api, server_url(httpserver)).series(START, END)
    assert time.perf_counter() - started >= 0.1


def test_429_asking_too_long_fails_without_waiting(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_data("", status=429, headers={"Retry-After": "3600"})
    sleeps: list = []
    with pytest.raises(SourceError, match="Retry-After 3600 s exceeds max_retry_after 60 s"):
        source_for(api, server_url(httpserver), sleeps).series(START, END)
    assert sleeps == [] and data_requests(httpserver, api) == 1


def test_invalid_json(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_data('{"data": [', content_type="application/json")
    with pytest.raises(SourceError, match=rf"{api.name}: GET .*: invalid JSON"):
        source_for(api, server_url(httpserver)).series(START, END)
    assert data_requests(httpserver, api) == 1  # a malformed answer is not retried


def test_valid_json_of_the_wrong_shape(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_json(api.wrong_shape)
    with pytest.raises(SourceError, match=rf"{api.name}: unexpected response: .* expected"):
        source_for(api, server_url(httpserver)).series(START, END)


def test_empty_data(api, httpserver):
    for path in (api.data_path, *api.fill_paths):
        httpserver.expect_request(path).respond_with_json(
            api.empty if path == api.data_path else {"data": [], "meta": {"units": "lbs_co2_per_mwh"}}
        )
    with pytest.raises(SourceError, match=rf"{api.name}: the response holds no intensity points"):
        source_for(api, server_url(httpserver)).series(START, END)


def test_zero_is_a_value_not_missing(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_json(api.payload([0, 0, 50]))
    series = source_for(api, server_url(httpserver)).series(START, END)
    assert series.values[:2].tolist() == [0.0, 0.0] and series.at(START) == 0.0


def test_negative_intensity_is_refused(api, httpserver):
    httpserver.expect_request(api.data_path).respond_with_json(api.payload([120, -5]))
    with pytest.raises(SourceError, match=r"\[1\]\.[\w.]+ is -5, not an intensity \(0 to 10000 g/kWh\)"):
        source_for(api, server_url(httpserver)).series(START, END)


def test_retry_after_reads_seconds_and_http_dates():
    from carbon_pipe.intensity.sources.http import retry_after_seconds

    moment = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc).timestamp()
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: moment - 30) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: moment + 5) == 0.0  # already past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
