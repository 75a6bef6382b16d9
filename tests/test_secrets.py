"""Secrets come from the environment only: run the real pipeline with fake credentials that the sources really
use, then search every file the run left and everything it printed for them."""

import base64
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import MNIST_RAW, REPO, VENV_BIN, require_mnist, tiny_params, write_params

pytestmark = pytest.mark.slow

SECRETS = {
    "ELECTRICITYMAPS_API_TOKEN": "em-token-9f1c3d5e",
    "WATTTIME_USERNAME": "wt-user-7a2b4c",
    "WATTTIME_PASSWORD": "wt-pass-6e8d0f",
}
BEARER = "wt-bearer-5b7e9a1c"


def hourly_forecast(start: datetime, hours: int) -> dict:
    points = [
        {"carbonIntensity": 300 + 150 * ((h % 24) in range(16, 22)) - 120 * ((h % 24) in range(1, 6)),
         "datetime": (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        for h in range(hours)
    ]
    return {"zone": "DE", "forecast": points}


def test_tokens_never_reach_params_lock_outputs_or_logs(tmp_path, httpserver):
    require_mnist()
    import shutil

    now = datetime(2025, 1, 15, 18, tzinfo=timezone.utc)
    httpserver.expect_request("/login").respond_with_json({"token": BEARER})
    httpserver.expect_request("/v3/forecast").respond_with_data("upstream trouble", status=500)
    httpserver.expect_request(
        "/v3/carbon-intensity/forecast", headers={"auth-token": SECRETS["ELECTRICITYMAPS_API_TOKEN"]}
    ).respond_with_json(hourly_forecast(now, 72))
    url = httpserver.url_for("").rstrip("/")

    project = tmp_path / "project"
    shutil.copytree(REPO / "carbon_pipe", project / "carbon_pipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "custom_models", project / "custom_models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", project)
    shutil.copytree(REPO / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    params = tiny_params()
    params["carbon"].update(sources=["watttime", "electricitymaps", "mock"])
    params["carbon"]["watttime"].update(base_url=url, retries=0)
    params["carbon"]["electricitymaps"].update(base_url=f"{url}/v3", zone="DE", retries=0)
    write_params(project, params)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = {**os.environ, **SECRETS, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "CARBON_PIPE_DATA_MIRROR": str(MNIST_RAW)}
    run = subprocess.run([sys.executable, "-m", "dvc", "repro", "-v"], cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    decision = json.loads((project / "stages/wait-for-window/decision.json").read_text())
    assert decision["source"] == "electricitymaps"  # served with the token from the environment
    assert [failure["source"] for failure in decision["source_failures"]] == ["watttime"]  # logged in, then failed
    assert any(request.headers.get("Authorization", "").startswith("Basic ") for request, _ in httpserver.log)

    basic = base64.b64encode(f"{SECRETS['WATTTIME_USERNAME']}:{SECRETS['WATTTIME_PASSWORD']}".encode()).decode()
    needles = [*SECRETS.values(), BEARER, basic]  # the Basic header carries the credentials base64-encoded
    leaks = [(name, "stdout/stderr") for name in needles if name in run.stdout + run.stderr]
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(project).parts[:1]:
            content = path.read_bytes()
            leaks += [(needle, str(path.relative_to(project))) for needle in needles if needle.encode() in content]
    assert leaks == []
