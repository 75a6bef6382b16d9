"""A rerun of an unfinished wait keeps the job's submission time and deadline; signals during the first fetch.

The real-clock tests run the command as a process on the wall clock, on a trace written around the test's start:
400 g/kWh, except a second at 200 every 20 s from t0+14. The first attempt is submitted when the process gets
there (S, however long it took to start) and plans the first dip after S. Once it is stopped, a cleaner 100 is
added past its deadline (S + max_wait 30 s), and the rerun starts late enough that a fresh submission could reach
it: a resumed one must not.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from werkzeug import Response

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import Interrupted
from carbon_pipe.layout import DECISION_JSON, HORIZON_JSON, INTENSITY_CSV, SCHEDULE_METRICS, WAIT_STATE
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.scheduling.wait_resume import SCHEDULING_CODE, SCHEDULING_PARAMS, SET_ASIDE
from carbon_pipe.timeutil import iso, parse_instant

from ..conftest import REPO, default_params, write_params
from .test_wait_for_window import SUBMITTED, RecordingClock, params_with

MAX_WAIT = 30.0
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


DIP_EVERY = 20.0


def dips(folder: Path, t0: float, cleaner_at: float | None = None) -> None:
    """400 g/kWh with a second at 200 every DIP_EVERY s from t0+14, and a second at 100 from `cleaner_at` (halfway
    between two dips). Written whole, then renamed: a command re-reading it never sees half a file."""
    points = {t0 - 10: 400, t0 + 300: 400}
    for k in range(int(300 // DIP_EVERY)):
        points.update({t0 + 14 + k * DIP_EVERY: 200, t0 + 15 + k * DIP_EVERY: 400})
    if cleaner_at is not None:
        points.update({cleaner_at: 100, cleaner_at + 1: 400})
    text = "timestamp,carbon_intensity\n" + "".join(f"{t:.3f},{v}\n" for t, v in sorted(points.items()))
    (folder / "trace.tmp").write_text(text)
    (folder / "trace.tmp").replace(folder / "trace.csv")


def first_dip_after(t0: float, moment: float) -> float:
    return t0 + 14 + DIP_EVERY * max(0, math.ceil((moment - t0 - 14) / DIP_EVERY))


def real_params(folder: Path, **scheduler) -> dict:
    raw = default_params()
    raw["carbon"].update(sources=["csv"], horizon="5min")
    raw["carbon"]["csv"].update(path="trace.csv")
    raw["scheduler"].update(
        clock="real", max_wait=f"{MAX_WAIT:g}s", expected_duration="1s", replan_interval="1s", **scheduler
    )
    write_params(folder, raw)
    return raw


def wait_command(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", "wait-for-window"],
        cwd=folder,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def first_look(process: subprocess.Popen) -> float:
    """Read stderr up to the first 'next look in' line (planned, now waiting); return the time that line gives."""
    seen = []
    while True:
        line = process.stderr.readline()
        assert line, f"wait-for-window ended before waiting: {''.join(seen)}"
        seen.append(line)
        if "next look in" in line:
            return parse_instant(line.split(": intensity")[0])


def run_to_the_end(folder: Path) -> tuple[dict, str]:
    process = wait_command(folder)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    return json.loads((folder / DECISION_JSON).read_text()), stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_rerun_after_a_kill_or_sigterm_keeps_the_submission_and_deadline(workspace, signum):
    t0 = time.time()
    dips(workspace, t0)
    real_params(workspace)
    first = wait_command(workspace)
    looked = first_look(first)  # S: however long the process took to get here, the trace has a dip ahead
    first.send_signal(signum)
    _, rest = first.communicate(timeout=30)
    assert first.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 143), rest
    if signum == signal.SIGTERM:  # recorded, with the signal
        stopped = json.loads((workspace / DECISION_JSON).read_text())
        assert stopped["interrupted"] and stopped["signal"] == "SIGTERM" and stopped["start"] is None
        assert "Traceback" not in rest
    # The cleaner 100 halfway between two dips, a second or more past the first deadline (and its 1 s job); a fresh
    # submission from 30 s before it on could wait for it.
    cleaner = first_dip_after(t0, looked + MAX_WAIT + 1 - DIP_EVERY / 2) + DIP_EVERY / 2
    dips(workspace, t0, cleaner_at=cleaner)
    time.sleep(max(0.0, cleaner - MAX_WAIT + 0.5 - time.time()))

    decision, stderr = run_to_the_end(workspace)
    submitted = parse_instant(decision["horizon"]["now"])
    assert submitted == pytest.approx(looked, abs=1.0)  # the first attempt's submission, not the rerun's
    if signum == signal.SIGTERM:
        assert decision["horizon"]["now"] == stopped["horizon"]["now"]
        assert decision["latest_start"] == stopped["latest_start"]
    assert parse_instant(decision["latest_start"]) == submitted + MAX_WAIT
    assert parse_instant(decision["start"]) <= submitted + MAX_WAIT  # not the cleaner dip past the first deadline
    resumed = decision["resumed_wait"]
    assert resumed["first_submitted"] == decision["horizon"]["now"] and resumed["attempts"] == 2
    [earlier] = resumed["earlier_attempts"]
    assert earlier["stopped_by"] == (None if signum == signal.SIGKILL else "SIGTERM")
    assert parse_instant(earlier["planned_start"]) == pytest.approx(first_dip_after(t0, looked), abs=1.0)
    assert f"resuming the wait submitted at {decision['horizon']['now']}" in stderr
    horizon = json.loads((workspace / HORIZON_JSON).read_text())
    assert horizon["now"] == decision["horizon"]["now"]  # where the baseline sits
    assert not (workspace / WAIT_STATE).exists()  # a finished decision leaves no wait to resume


@pytest.mark.slow
def test_a_changed_param_between_attempts_starts_a_fresh_wait(workspace):
    t0 = time.time()
    dips(workspace, t0)
    real_params(workspace)
    first = wait_command(workspace)
    looked = first_look(first)
    first.kill()
    first.communicate(timeout=30)
    assert (workspace / WAIT_STATE).exists()
    real_params(workspace, rule="now")  # another rule: another job, whose wait starts now
    decision, stderr = run_to_the_end(workspace)
    assert decision["resumed_wait"] is None and parse_instant(decision["horizon"]["now"]) > looked
    [note] = [line for line in stderr.splitlines() if "set aside" in line]
    assert "other params or code" in note and "starting a fresh wait" in note
    assert not (workspace / WAIT_STATE).exists()


@pytest.mark.parametrize("content, says", [
    ('{"fingerprint": "abc", "submitted": ', "not valid JSON"),
    ('{"fingerprint": "abc", "submitted": "2025-01-15T17:00:00Z", "attempts": [{"started": 5}]}',
     "unreadable: attempts.0.started is 5, not a time"),
    ('{"fingerprint": "abc", "submitted": "2025-01-15T17:00:00Z"}', "unreadable: attempts is missing"),
])
def test_a_corrupt_state_file_is_set_aside_with_one_line(workspace, content, says):
    (workspace / WAIT_STATE).parent.mkdir(parents=True)
    (workspace / WAIT_STATE).write_text(content)
    lines: list[str] = []
    decision = wait_for_window.run_stage(parse_params(default_params()), say=lines.append).to_json()
    assert decision["resumed_wait"] is None and decision["horizon"]["now"] == "2025-01-15T18:00:00.000000Z"
    [note] = [line for line in lines if "set aside" in line]
    assert says in note and "starting a fresh wait" in note
    assert not (workspace / WAIT_STATE).exists() and (workspace / SET_ASIDE).exists()


def test_a_wait_submitted_longer_ago_than_the_horizon_is_set_aside(workspace):
    params = params_with(clock="real", replan_interval="1h")
    clock = RecordingClock(SUBMITTED, interrupt_after=1)
    with pytest.raises(Interrupted):
        wait_for_window.run_stage(params, say=lambda line: None, clock=clock)
    assert (workspace / WAIT_STATE).exists()
    clock.interrupt_after, clock.current = None, SUBMITTED + 49 * 3600  # carbon.horizon is 48 h
    lines: list[str] = []
    decision = wait_for_window.run_stage(params, say=lines.append, clock=clock).to_json()
    assert decision["resumed_wait"] is None and decision["horizon"]["now"] == iso(SUBMITTED + 49 * 3600)
    [note] = [line for line in lines if "set aside" in line]
    assert "submitted more than carbon.horizon (48h) ago" in note


def test_the_fingerprint_covers_the_stages_dvc_params_and_code():
    """What makes a wait another job is exactly what makes DVC rerun the stage."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["wait-for-window"]
    assert {f"carbon_pipe/{name}" for name in SCHEDULING_CODE} == set(stage["deps"])
    assert set(SCHEDULING_PARAMS) == set(stage["params"])


@pytest.mark.slow
@pytest.mark.parametrize("signum, clock", [(signal.SIGTERM, "real"), (signal.SIGINT, "simulated")])
def test_a_signal_during_the_first_fetch_is_recorded_and_train_refuses_it(workspace, httpserver, signum, clock):
    entered, release = threading.Event(), threading.Event()

    def slow_then_down(request):  # the first request hangs until the test has signalled; then the API is down
        if not entered.is_set():
            entered.set()
            release.wait(30)
        return Response("unavailable", status=503)

    httpserver.expect_request(re.compile("/intensity/.*")).respond_with_handler(slow_then_down)
    raw = default_params()
    raw["carbon"].update(sources=["uk", "mock"])
    raw["carbon"]["uk"].update(base_url=httpserver.url_for("").rstrip("/"), retries=0, timeout="60s")
    raw["scheduler"].update(clock=clock, rule="now")
    write_params(workspace, raw)
    (workspace / HORIZON_JSON).parent.mkdir(parents=True)
    (workspace / HORIZON_JSON).write_text("{}")  # an earlier decision's, which must not outlive this one
    try:
        process = wait_command(workspace)
        assert entered.wait(60), process.communicate(timeout=5)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        release.set()
    assert process.returncode == 128 + signum, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"stopped by {signum.name}" in last and "before any plan" in last and "Traceback" not in stderr
    decision = json.loads((workspace / DECISION_JSON).read_text())
    assert decision["interrupted"] and decision["signal"] == signum.name and decision["start"] is None
    assert decision["horizon"]["now"] and decision["chunks"] == [] and decision["horizon"]["clock"] == clock
    assert json.loads((workspace / SCHEDULE_METRICS).read_text())["interrupted"] is True
    assert not (workspace / HORIZON_JSON).exists() and not (workspace / INTENSITY_CSV).exists()

    for run, why in [("optimized", "interrupted before a start was chosen"), ("baseline", "horizon.json is missing")]:
        refused = subprocess.run(
            [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", run],
            cwd=workspace,
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert why in line

    decision_after, stderr = run_to_the_end(workspace)  # the API now answers 503: the mock serves
    assert decision_after["horizon"]["now"] == decision["horizon"]["now"]
    assert decision_after["horizon"]["source"] == "mock"
    assert decision_after["resumed_wait"]["earlier_attempts"][0]["stopped_by"] == signum.name
