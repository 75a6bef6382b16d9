"""Interruptible entries on the real clock. Under `queue run`, one worker, a trace with three short troughs: the
interruptible entry runs in the first and the last, pausing between them; the whole entry, cleaner per gram, takes
the middle one, in that pause. Never two running at once, and each experiment's metrics tell what ran when. And the
torch pipeline under such a slot: train-optimized follows the queue's chunks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from carbon_pipe.timeutil import parse_instant

from ..conftest import VENV_BIN
from .queue_project import make_project, trace
from .test_local import experiment_metrics, queue_state

pytestmark = pytest.mark.slow


def test_an_interruptible_entry_pauses_between_its_chunks_and_another_runs_in_the_pause(tmp_path):
    now = time.time()
    # 10-second points from a minute ago: dirty until now + 50 s (the queue is added and planned by then), then
    # troughs at +50 (A), +110 (B, the cleanest) and +170 s (C), 30 s each, dirty between and after. Each launch
    # takes a few seconds to start its command (dvc exp run, wait-for-window, carbon-pipe run), so the interruptible
    # entry's 40 s of work cannot fit in A.
    values = [400] * 11 + [100] * 3 + [400] * 3 + [50] * 3 + [400] * 3 + [100] * 3 + [400] * 60
    project = make_project(tmp_path / "project", trace(now, 10, values), pausing=True)
    origin = int(now) - 60  # the trace's first point, on a whole second
    trough = {name: (origin + offset, origin + offset + 30) for name, offset in (("A", 110), ("B", 170), ("C", 230))}
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli"]
    for entry in (
        ["-S", "train.epochs=40", "-S", "scheduler.min_chunk=30s", "-n", "split", "--duration", "60s", "--power",
         "0.2", "--interruptible"],
        ["-S", "train.epochs=3", "-n", "whole", "--duration", "30s", "--power", "0.4"],
    ):
        subprocess.run([*cli, "queue", "add", *entry, "--slack", "5min"], cwd=project, env=env, check=True)
    # One plan, made at the start: a re-plan in the tick after a slot began would move that start to the tick.
    run = [*cli, "queue", "run", "--workers", "1", "--step", "10s", "--replan-interval", "10min"]
    finished = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stderr

    entries = queue_state(project)
    assert {name: entry["state"] for name, entry in entries.items()} == {"split": "done", "whole": "done"}
    chunks = [tuple(chunk) for chunk in entries["split"]["slot"]["chunks"]]
    assert chunks == [pytest.approx(trough["A"], abs=0.01), pytest.approx(trough["C"], abs=0.01)]
    assert entries["whole"]["slot"]["start"] == pytest.approx(trough["B"][0], abs=0.01)

    launches = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert [launch["entry"] for launch in launches] == ["split", "whole", "split"]
    spans = [(launch["began"], launch["ended"]) for launch in launches]
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans  # never two at once
    first, middle, last = spans
    assert trough["A"][0] <= first[0] and first[1] <= trough["A"][1] + 2.5  # SIGTERM at the chunk's end, 2 s grace
    assert trough["B"][0] <= middle[0]
    assert trough["C"][0] - 0.5 <= last[0] < trough["C"][1]  # slept to the queue's next chunk, not re-planned
    assert launches[-1]["done"] == 40

    metrics = experiment_metrics(project, env, "metrics/optimized.json")
    scheduled = metrics["split"]["scheduler_metrics"]  # (`dvc exp show` leaves out the lists: chunks, pauses)
    assert scheduled["clock"] == "real" and scheduled["planned_chunks"] == 2
    assert scheduled["chunk_mapping"] == "time-budgets"
    assert scheduled["paused_seconds"] == pytest.approx(trough["C"][0] - trough["A"][1], abs=4)
    whole = metrics["whole"]["scheduler_metrics"]
    assert whole["clock"] == "simulated" and "planned_chunks" not in whole  # run whole, recorded in its slot


def test_a_pipeline_started_in_chunks_trains_in_the_next_chunk_when_its_earlier_stages_outlast_the_first(
    workspace, monkeypatch
):
    """The stages under an interruptible slot whose first chunk ends before train-optimized starts (the baseline and
    the profile take longer): the optimized run waits for the queue's second chunk, and trains there."""
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.pipeline import train_baseline, train_optimized, wait_for_window
    from carbon_pipe.scheduling.queued import QueueSlot

    from ..conftest import synthetic_dataset, tiny_params

    params = parse_params(tiny_params(train={"epochs": 2}))
    synthetic_dataset(train=256, test=64)
    now = time.time()
    chunks = ((now - 1, now + 2), (now + 40, now + 100))  # the baseline and three profile processes take longer
    marker = workspace / "paused"
    slot = QueueSlot("split", now - 60, chunks[0][0], chunks[-1][1], 0.5, 1, "milp", now - 30, chunks, str(marker))
    for key, value in slot.environment().items():
        monkeypatch.setenv(key, value)
    decision = wait_for_window.run_stage(params, say=lambda line: None)
    assert len(decision.chunks) == 2 and decision.chunks[1].start == chunks[1][0]
    train_baseline.run_stage(params)
    scheduled = train_optimized.run_stage(params).to_json()["scheduler_metrics"]
    assert scheduled["clock"] == "real" and scheduled["planned_chunks"] == 2
    [ran] = scheduled["chunks"]  # nothing was left of the first chunk when it got there
    assert parse_instant(ran["planned_end"]) == pytest.approx(chunks[1][1], abs=0.01)
    assert chunks[1][0] - 0.01 <= parse_instant(ran["start"]) < chunks[1][1] and ran["steps"] > 0
    assert not marker.exists()  # removed as it resumed
