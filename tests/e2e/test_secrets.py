"""Secrets come from the environment only: run the real pipeline with fake credentials that the sources really
use, against servers that echo them back (a refused login repeating `user:password` and its Authorization header,
a forecast whose warnings repeat the bearer token), then search every file the run left and everything it printed
for every form of them."""

import base64
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from werkzeug import Response

from ..conftest import MNIST_RAW, REPO, VENV_BIN, require_mnist, tiny_params, write_params

pytestmark = pytest.mark.slow

SECRETS = {
    "ELECTRICITYMAPS_API_TOKEN": "em-token-9f1c3d5e",
    "WATTTIME_USERNAME": "wt-user-7a2b4c",
    "WATTTIME_PASSWORD": "wt-pass-6e8d0f",
}
BEARER = "wt-bearer-5b7e9a1c"
PAIR = f"{SECRETS['WATTTIME_USERNAME']}:{SECRETS['WATTTIME_PASSWORD']}"
BASIC = base64.b64encode(PAIR.encode()).decode()  # the Basic header carries the credentials base64-encoded


def hourly_forecast(start: datetime, hours: int) -> dict:
    points = [
        {"carbonIntensity": 300 + 150 * ((h % 24) in range(16, 22)) - 120 * ((h % 24) in range(1, 6)),
         "datetime": (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        for h in range(hours)
    ]
    return {"zone": "DE", "forecast": points}


def login_refused_once():
    """The first login is refused with the credentials repeated back; later ones get the bearer token."""
    logins = []

    def answer(request):
        logins.append(request)
        if len(logins) > 1:
            return Response(json.dumps({"token": BEARER}), content_type="application/json")
        sent = request.headers["Authorization"]
        said = f"no account {base64.b64decode(sent.split()[1]).decode()} (you sent {sent})"
        return Response(json.dumps({"message": said}), status=403, content_type="application/json")

    return answer


def forecast_repeating_the_bearer(start: datetime):
    def answer(request):
        points = [{"point_time": (start + timedelta(hours=h)).isoformat(), "value": 100} for h in range(72)]
        warning = {"type": "Echo", "message": f"served to {request.headers['Authorization']} of {PAIR}"}
        meta = {"units": "lbs_co2_per_mwh", "data_point_period_seconds": 3600, "warnings": [warning]}
        return Response(json.dumps({"data": points, "meta": meta}), content_type="application/json")

    return answer


def test_tokens_never_reach_params_lock_outputs_or_logs(tmp_path, httpserver):
    require_mnist()
    import shutil

    now = datetime(2025, 1, 15, 18, tzinfo=timezone.utc)
    httpserver.expect_request("/login").respond_with_handler(login_refused_once())
    httpserver.expect_request("/v3/forecast").respond_with_handler(forecast_repeating_the_bearer(now))
    httpserver.expect_request(
        "/v3/carbon-intensity/forecast", headers={"auth-token": SECRETS["ELECTRICITYMAPS_API_TOKEN"]}
    ).respond_with_json(hourly_forecast(now, 72))
    url = httpserver.url_for("").rstrip("/")

    project = tmp_path / "project"
    shutil.copytree(REPO / "carbon_pipe", project / "carbon_pipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "custom_models", project / "custom_models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", project)
    shutil.copytree(REPO / "data", project / "data")  # data.path's default: fetch-data's dep in dvc.yaml
    shutil.copytree(REPO / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    params = tiny_params()
    # The chain's WattTime login is refused, Electricity Maps serves; the WattTime alternative logs in, is cleaner,
    # wins.
    params["carbon"].update(
        sources=["watttime", "electricitymaps", "mock"], alternatives=[{"source": "watttime", "region": "CAISO_SOUTH"}]
    )
    params["carbon"]["watttime"].update(base_url=url, retries=0)
    params["carbon"]["electricitymaps"].update(base_url=f"{url}/v3", zone="DE", retries=0)
    write_params(project, params)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = {
        **os.environ,
        **SECRETS,
        "PATH": VENV_BIN + os.pathsep + os.environ["PATH"],
        "CARBON_PIPE_DATA_MIRROR": str(MNIST_RAW),
    }
    run = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "-v"], cwd=project, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    decision = json.loads((project / "stages/wait-for-window/decision.json").read_text())
    assert (decision["horizon"]["source"], decision["horizon"]["region"]) == ("watttime", "CAISO_SOUTH")
    [chain, alternative] = decision["locations"]
    assert (
        chain["source"] == "electricitymaps" and alternative["chosen"]
    )  # EM served with the token from the environment
    [refused] = decision["horizon"]["source_failures"]
    assert refused["error"].endswith("/login: HTTP 403: no account [redacted] (you sent Basic [redacted])")
    assert "WattTime warning: served to Bearer [redacted] of [redacted]" in decision["horizon"]["series_notes"]
    assert [request.path for request, _ in httpserver.log].count("/login") == 2

    needles = [*SECRETS.values(), PAIR, BASIC, BEARER]
    leaks = [(name, "stdout/stderr") for name in needles if name in run.stdout + run.stderr]
    for path in project.rglob("*"):  # everything: outputs, logs, params, dvc.lock, .dvc/, .git/
        if path.is_file():
            content = path.read_bytes()
            leaks += [(needle, str(path.relative_to(project))) for needle in needles if needle.encode() in content]
    assert leaks == []
