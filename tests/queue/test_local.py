"""The queue on the real clock: three entries, one worker, a trace whose trough is a minute away. They run in their
slots one at a time, and a SIGKILL of `queue run` mid-way plus a restart runs each exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import VENV_BIN
from .queue_project import make_project, trace

pytestmark = pytest.mark.slow


def queue_state(project) -> dict:
    path = project / ".dvc/tmp/carbon-pipe-queue/queue.json"
    try:
        return {entry["name"]: entry for entry in json.loads(path.read_text())["entries"]}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def experiment_metrics(project, env: dict, metrics_file: str) -> dict:
    """Each experiment's metrics file as `dvc exp show` reads it, by experiment name."""
    shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, env=env, capture_output=True, text=True)
    return {
        rev["name"]: rev["data"]["metrics"][metrics_file]["data"]
        for commit in json.loads(shown.stdout)
        for experiment in commit.get("experiments") or []
        for rev in experiment["revs"]
    }


def test_entries_run_in_their_slots_one_at_a_time_and_exactly_once_across_a_kill(tmp_path):
    now = time.time()
    # 10-second points: dirty for the first two minutes of the trace (one of them already past), a two-minute
    # trough, dirty again.
    project = make_project(tmp_path / "project", trace(now, 10, [400] * 12 + [100] * 12 + [400] * 48))
    trough = (now - 60 + 120, now - 60 + 240)
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log"),
           "QUEUE_TEST_WORK_SECONDS": "2"}
    cli = [sys.executable, "-m", "carbon_pipe.cli"]
    subprocess.run([*cli, "queue", "add", "-S", "train.epochs=1,2,3", "-n", "e", "--duration", "25s",
                    "--slack", "8min"], cwd=project, env=env, check=True)
    run = [*cli, "queue", "run", "--workers", "1", "--step", "10s", "--replan-interval", "5s"]
    first = subprocess.Popen(run, cwd=project, env=env, stderr=subprocess.PIPE, text=True)
    # Kill it while the second entry runs: one done, one started (its experiment goes on without `run`).
    wait_until(lambda: sorted(e["state"] for e in queue_state(project).values()) == ["done", "queued", "started"],
               240, "one entry done and the next started")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr

    entries = queue_state(project)
    assert sorted(entries) == ["e-1", "e-2", "e-3"] and {e["state"] for e in entries.values()} == {"done"}
    ran = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert sorted(record["entry"] for record in ran) == ["e-1", "e-2", "e-3"]  # each exactly once
    spans = sorted((e["started_at"], e["finished_at"]) for e in entries.values())
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans  # never two at once
    for entry in entries.values():
        late = entry["started_at"] - entry["slot"]["start"]
        assert -0.01 <= late <= 3.0, (entry["name"], late)  # in its slot, within the runner's tick
    first_start = min(start for start, _ in spans)
    assert trough[0] - 0.01 <= first_start < trough[1], (first_start - trough[0])

    experiments = experiment_metrics(project, env, "metrics/work.json")
    assert sorted(experiments) == ["e-1", "e-2", "e-3"]
    for name, metrics in experiments.items():
        # Started by the queue: wait-for-window recorded the queue's slot, counted from the arrival, no new wait.
        assert metrics["rule"] == "queue" and metrics["wait_s"] > 0 and metrics["saving_vs_arrival_pct"] > 0, name


def test_a_pipeline_the_queue_started_reports_its_window_and_saving_against_its_arrival(workspace, monkeypatch):
    """The five stages under a queue slot: the optimized run is charged from when the queue started it, and the
    summary `dvc exp show` reads carries its CO2, energy, its window (hours after the arrival) and the saving of that
    window against starting at the arrival."""
    from carbon_pipe.scheduling.queued import QueueSlot

    from ..conftest import tiny_pipeline

    now = time.time()
    arrival = now - 5 * 3600  # queued in the evening peak of the mock curve, started five hours later
    slot = QueueSlot("sweep-1", arrival, now - 1, now + 60, 0.5, 2, "milp", now - 30)
    for key, value in slot.environment().items():
        monkeypatch.setenv(key, value)
    tiny_pipeline(train=256)
    decision = json.loads((workspace / "stages/wait-for-window/decision.json").read_text())
    summary = json.loads((workspace / "metrics/summary.json").read_text())
    assert decision["rule"] == "queue" and "sweep-1" in decision["reason"]
    assert summary["optimized_wait_h"] == pytest.approx((decision["wait_seconds"]) / 3600)
    assert summary["optimized_wait_h"] == pytest.approx(5, abs=0.01)
    assert summary["optimized_co2_g"] > 0 and summary["optimized_energy_wh"] > 0
    # The window's saving against starting at the arrival, measured and as planned, agree in sign.
    assert (summary["schedule_effect_g"] > 0) == (decision["expected_saving_vs_now_pct"] > 0)
