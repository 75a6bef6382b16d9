"""No credential leaves the process. Servers (and proxies) that echo the request's credentials back: in error
bodies, in WattTime's warnings and signal index; through the fallback chain and through the CLI. And credentials
that cannot travel in an HTTP header: one line naming the variable, then the next source."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest
from werkzeug import Response

from carbon_pipe.artifacts import write_json, write_text
from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.intensity.sources import fetch_series
from carbon_pipe.timeutil import parse_instant

from ...conftest import default_params, write_params

START = parse_instant("2024-03-01T12:00:00Z")
END = START + 3 * 3600
EM_TOKEN = "em-token-3f9a7c21"
WT_USER = "wt-user-8c4e"
WT_PASSWORD = 'wt-pa"ss-5d1b'  # JSON escapes the quote: the escaped form must not slip through either
BEARER = "wt-bearer-0a9b8c7d"
ENV = {"ELECTRICITYMAPS_API_TOKEN": EM_TOKEN, "WATTTIME_USERNAME": WT_USER, "WATTTIME_PASSWORD": WT_PASSWORD}
PAIR = f"{WT_USER}:{WT_PASSWORD}"
BASIC = base64.b64encode(PAIR.encode()).decode()
SECRETS = (EM_TOKEN, WT_USER, WT_PASSWORD, PAIR, BASIC, BEARER)
UK_DATA = re.compile(r"^/intensity/")


def leaked(text: str) -> list[str]:
    """Each secret in `text`, as is or escaped the way JSON or repr() writes it."""
    return [s for s in SECRETS if any(form in text for form in (s, json.dumps(s)[1:-1], repr(s)[1:-1]))]


def echoed(request) -> str:
    """What a chatty server or proxy says back: the credential headers it got, the Basic one decoded, the account."""
    auth = request.headers.get("Authorization", "")
    decoded = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
    return (
        f"refused {auth} ({decoded}) auth-token={request.headers.get('auth-token', '')} account {PAIR} key {EM_TOKEN}"
    )


BODIES = {
    "message": lambda said: {"message": said},
    "error": lambda said: {"error": said},
    "error.message": lambda said: {"error": {"message": said}},
    "plain text": None,
}


def echo(status: int, body: str):
    def answer(request):
        shape = BODIES[body]
        if shape is None:
            return Response(echoed(request), status=status, content_type="text/plain")
        return Response(json.dumps(shape(echoed(request))), status=status, content_type="application/json")

    return answer


def uk_like_points(hours: int = 4) -> list[dict]:
    return [
        {"point_time": f"2024-03-01T{12 + m // 60}:{m % 60:02d}:00+00:00", "value": 500}
        for m in range(0, 60 * hours, 5)
    ]


def forecast_warning_echo(request) -> Response:
    """A WattTime forecast whose meta.warnings repeat the request's credentials."""
    meta = {
        "units": "lbs_co2_per_mwh",
        "data_point_period_seconds": 300,
        "warnings": [{"type": "Echo", "message": echoed(request)}],
    }
    return Response(json.dumps({"data": uk_like_points(), "meta": meta}), content_type="application/json")


def signal_index_echo(request) -> Response:
    meta = {"units": "percentile", "data_point_period_seconds": 300}
    return Response(
        json.dumps({"data": [{"point_time": echoed(request), "value": 96}], "meta": meta}),
        content_type="application/json",
    )


@pytest.fixture
def credentials(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def chain(httpserver, name: str, base: str = "") -> CarbonParams:
    section = {"base_url": httpserver.url_for(base).rstrip("/"), "timeout": "2s", "retries": 0}
    return CarbonParams.model_validate({"sources": [name, "mock"], name: section})


ENDPOINTS = [
    ("uk", "", UK_DATA),  # no credential of its own; a proxy in front of it may still know them
    ("electricitymaps", "/v3", "/v3/carbon-intensity/forecast"),
    ("watttime", "", "/login"),
    ("watttime", "", "/v3/forecast"),
]


@pytest.mark.parametrize("status", [400, 401, 403, 500])
@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize(
    "name, base, path", ENDPOINTS, ids=["uk", "electricitymaps", "watttime-login", "watttime-forecast"]
)
def test_credentials_echoed_in_an_error_never_reach_the_recorded_failure(
    credentials, httpserver, name, base, path, status, body
):
    httpserver.expect_request(path).respond_with_handler(echo(status, body))
    httpserver.expect_request("/login").respond_with_json({"token": BEARER})
    fetched = fetch_series(chain(httpserver, name, base), START, END, START, with_details=True)
    [failure] = fetched.failures
    assert (fetched.series.source, failure.source) == ("mock", name) and f"HTTP {status}" in failure.error
    if body != "plain text":  # the API's reason is shown, with the credentials taken out
        assert f"HTTP {status}: refused" in failure.error and "[redacted]" in failure.error
    assert leaked(json.dumps({**fetched.record(), "notes": fetched.series.notes, "details": fetched.details})) == []


@pytest.mark.parametrize("signal_index", [echo(400, "message"), signal_index_echo], ids=["error", "point_time"])
def test_watttime_warnings_and_signal_index_echoing_credentials_are_redacted(credentials, httpserver, signal_index):
    httpserver.expect_request("/login").respond_with_json({"token": BEARER})
    httpserver.expect_request("/v3/forecast").respond_with_handler(forecast_warning_echo)
    httpserver.expect_request("/v3/signal-index").respond_with_handler(signal_index)
    fetched = fetch_series(chain(httpserver, "watttime"), START, END, START, with_details=True)
    assert fetched.series.source == "watttime"
    [warning] = [note for note in fetched.series.notes if note.startswith("WattTime warning")]
    assert warning.startswith(
        "WattTime warning: refused Bearer [redacted] () auth-token= account [redacted] key [redacted]"
    )
    shown = next(value for key, value in fetched.details.items() if key in ("signal_index_error", "signal_index_time"))
    assert "Bearer [redacted]" in shown
    assert leaked(json.dumps({"notes": fetched.series.notes, "details": fetched.details})) == []


# -- through the CLI, as a separate process that learns the bearer itself ------------------------------------


def cli_project(workspace, httpserver, **carbon) -> None:
    url = httpserver.url_for("").rstrip("/")
    raw = default_params()
    raw["scheduler"].update(now="2024-03-01T12:00:00Z", max_wait="2h", expected_duration="30min")
    raw["carbon"].update(horizon="3h", **carbon)
    for name, base in (("uk", url), ("electricitymaps", f"{url}/v3"), ("watttime", url)):
        raw["carbon"][name].update(base_url=base, retries=0, timeout="2s")
    write_params(workspace, raw)


def cli(workspace, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", *args], cwd=workspace, capture_output=True, text=True,
        env={**os.environ, **ENV, **(env or {})},
    )


@pytest.mark.slow
def test_cli_output_and_errors_hold_no_credential_when_every_api_echoes_them(workspace, httpserver):
    httpserver.expect_request("/login").respond_with_handler(echo(403, "message"))
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_handler(echo(401, "error"))
    httpserver.expect_request(UK_DATA).respond_with_handler(echo(500, "error.message"))
    cli_project(workspace, httpserver, sources=["watttime", "electricitymaps", "uk", "mock"])
    for command in (["intensity", "--json"], ["plan", "--json"], ["intensity"], ["plan"]):
        result = cli(workspace, *command)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert leaked(result.stdout + result.stderr) == []
        assert result.stdout.count("[redacted]") >= 3  # each API's reason is shown, redacted
        if "--json" in command:
            report = json.loads(result.stdout)
            assert report["source"] == "mock" and [f["source"] for f in report["source_failures"]] == [
                "watttime",
                "electricitymaps",
                "uk",
            ]
    cli_project(workspace, httpserver, sources=["watttime", "mock"], fallback=False)
    result = cli(workspace, "plan", "--json")
    assert result.returncode == 1 and result.stdout == "" and leaked(result.stderr) == []
    [line] = result.stderr.splitlines()
    assert (
        line.startswith("carbon-pipe: error: watttime: GET ")
        and "/login: HTTP 403: refused Basic [redacted] ([redacted])" in line
    )


@pytest.mark.slow
def test_cli_shows_watttime_warnings_and_signal_index_without_the_bearer(workspace, httpserver):
    httpserver.expect_request("/login").respond_with_json({"token": BEARER})
    httpserver.expect_request("/v3/forecast").respond_with_handler(forecast_warning_echo)
    httpserver.expect_request("/v3/signal-index").respond_with_handler(echo(400, "message"))
    cli_project(workspace, httpserver, sources=["watttime"])
    for command in (["intensity", "--json"], ["intensity"], ["plan", "--json"]):
        result = cli(workspace, *command)
        assert result.returncode == 0, result.stderr
        assert leaked(result.stdout + result.stderr) == [] and "Bearer [redacted]" in result.stdout


# -- credentials that cannot travel in a header --------------------------------------------------------------

BAD_VALUES = [
    ("electricitymaps", "ELECTRICITYMAPS_API_TOKEN", "em-tök-3f9a7c21", "a non-ASCII character"),
    ("electricitymaps", "ELECTRICITYMAPS_API_TOKEN", "em-token\n3f9a7c21", "a control character"),
    ("watttime", "WATTTIME_PASSWORD", "wt-pass\u00a05d1b", "a non-ASCII character"),
    ("watttime", "WATTTIME_USERNAME", "wt\tuser", "a control character"),
]


@pytest.mark.parametrize("name, variable, value, problem", BAD_VALUES)
def test_a_credential_no_header_can_carry_is_one_line_naming_the_variable(
    credentials, httpserver, monkeypatch, name, variable, value, problem
):
    monkeypatch.setenv(variable, value)
    fetched = fetch_series(chain(httpserver, name, "/v3" if name == "electricitymaps" else ""), START, END, START)
    [failure] = fetched.failures
    assert fetched.series.source == "mock"
    assert failure.error.startswith(f"{name}: ${variable} holds {problem}") and value not in failure.error
    assert httpserver.log == []  # refused before anything was sent


def test_surrounding_whitespace_of_a_credential_is_stripped(credentials, httpserver, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", f" {EM_TOKEN}\n")  # as `echo $TOKEN > file` and a paste leave it
    monkeypatch.setenv("WATTTIME_PASSWORD", f"{WT_PASSWORD}\r\n")
    forecast = {"forecast": [{"carbonIntensity": 200, "datetime": f"2024-03-01T{12 + h}:00:00.000Z"} for h in range(4)]}
    httpserver.expect_request("/v3/carbon-intensity/forecast", headers={"auth-token": EM_TOKEN}).respond_with_json(
        forecast
    )
    assert (
        fetch_series(chain(httpserver, "electricitymaps", "/v3"), START, END, START).series.source == "electricitymaps"
    )
    httpserver.expect_request("/login", headers={"Authorization": f"Basic {BASIC}"}).respond_with_json(
        {"token": BEARER}
    )
    httpserver.expect_request("/v3/forecast").respond_with_json(
        {"data": uk_like_points(), "meta": {"units": "lbs_co2_per_mwh"}}
    )
    assert fetch_series(chain(httpserver, "watttime"), START, END, START).series.source == "watttime"


@pytest.mark.slow
def test_cli_with_a_non_ascii_token_falls_back_or_stops_in_one_line(workspace, httpserver):
    bad = {"ELECTRICITYMAPS_API_TOKEN": "em-tök-3f9a7c21"}
    cli_project(workspace, httpserver, sources=["electricitymaps", "mock"])
    result = cli(workspace, "intensity", "--json", env=bad)
    assert result.returncode == 0 and result.stderr == ""
    [failure] = json.loads(result.stdout)["source_failures"]
    assert (
        failure["error"]
        == "electricitymaps: $ELECTRICITYMAPS_API_TOKEN holds a non-ASCII character "
        "(a credential travels in an HTTP header, which carries ASCII only)"
    )
    cli_project(workspace, httpserver, sources=["electricitymaps", "mock"], fallback=False)
    result = cli(workspace, "plan", env=bad)
    assert result.returncode == 1 and result.stderr.splitlines() == [f"carbon-pipe: error: {failure['error']}"]


# -- the registry and the last line of defence ---------------------------------------------------------------


def test_redaction_takes_the_longest_secret_first_and_ignores_tiny_ones(credentials):
    from carbon_pipe import secrets

    secrets.remember(PAIR, BEARER, "abc")
    assert secrets.redact(f"a {PAIR} b {BEARER} c abc {WT_USER}") == "a [redacted] b [redacted] c abc [redacted]"
    assert secrets.redact_data({EM_TOKEN: [f"x{EM_TOKEN}", 1234, None]}) == {"[redacted]": ["x[redacted]", 1234, None]}


def test_artifact_writers_redact_strings_and_keep_numbers(credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("WATTTIME_USERNAME", "2024")  # a secret that looks like part of a number
    write_json(tmp_path / "a.json", {"note": f"token {EM_TOKEN} for 2024", "value": 0.120245, "year": 2024})
    write_text(tmp_path / "a.md", f"say {WT_PASSWORD}\n")
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "note": "token [redacted] for [redacted]",
        "value": 0.120245,
        "year": 2024,
    }
    assert (tmp_path / "a.md").read_text() == "say [redacted]\n"
