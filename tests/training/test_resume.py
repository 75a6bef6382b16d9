"""Checkpoint and resume: stop a run (planned pause, SIGTERM, SIGKILL) at random points, resume it, compare bytes.

The points are drawn from fixed seeds, so a failure can be replayed. Each run is a small SimpleCNN (with dropout,
so the RNG states matter) on a synthetic 12x12 set: a second or two.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import TrainingStopped
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.timeutil import parse_instant
from carbon_pipe.training.segments import Segment

from ..conftest import run_training, synthetic_dataset, tiny_params, write_params

RUN = Path("stages/train-baseline")
RESUME = RUN / "resume"
TOTAL_STEPS = 2 * 1024 // 16  # epochs x train samples / effective batch


def fast_params(**changes) -> dict:
    params = tiny_params(
        model={"kwargs": {"width": 4, "hidden": 16}},
        train={"epochs": 2, "checkpoint_every": 3},
        baseline={"batch_size": 8, "gradient_accumulation_steps": 2},
    )
    for section, values in changes.items():
        params[section].update(values)
    return params


def prepare(folder: Path, params: dict) -> None:
    """Synthetic data and the scheduler's outputs in `folder` (the current directory)."""
    write_params(folder, params)
    synthetic_dataset(train=1024, test=128, size=12)
    wait_for_window.run_stage(parse_params(params), say=lambda line: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run every stopped-and-resumed run must match."""
    folder = tmp_path_factory.mktemp("reference")
    previous = Path.cwd()
    os.chdir(folder)
    try:
        prepare(folder, fast_params())
        summary = run_training(parse_params(fast_params()), "baseline").to_json()
        return {
            "model": (RUN / "model.pt").read_bytes(),
            "epochs": pd.read_csv(RUN / "epochs.csv"),
            "summary": summary,
        }
    finally:
        os.chdir(previous)


@pytest.fixture
def project(workspace) -> Path:
    prepare(workspace, fast_params())
    return workspace


def assert_matches_reference(reference: dict, summary: dict) -> None:
    assert (RUN / "model.pt").read_bytes() == reference["model"]
    epochs = pd.read_csv(RUN / "epochs.csv")
    for column in ("train_loss", "test_loss", "test_accuracy"):
        pd.testing.assert_series_equal(epochs[column], reference["epochs"][column])
    assert summary["training_metrics"]["final_accuracy"] == reference["summary"]["training_metrics"]["final_accuracy"]
    assert not RESUME.exists()  # finished: nothing left to resume
    state = torch.load(RUN / "checkpoint.pt", weights_only=True)
    assert state["step"] == TOTAL_STEPS and len(state["epochs"]) == 2


def assert_segments_back_to_back(count: int) -> None:
    """On the simulated clock each segment starts where the previous one's last measured interval ended."""
    rows = pd.read_csv(RUN / "energy_intervals.csv")
    assert sorted(rows["segment"].unique()) == list(range(count))
    starts, ends = rows["start"].map(parse_instant), rows["end"].map(parse_instant)
    assert (starts.iloc[1:].to_numpy() - ends.iloc[:-1].to_numpy()).max() == pytest.approx(0, abs=1e-5)
    assert (starts.iloc[1:].to_numpy() - ends.iloc[:-1].to_numpy()).min() == pytest.approx(0, abs=1e-5)


# A planned pause (what an interruptible schedule does), at random steps and at an epoch boundary.
@pytest.mark.slow
@pytest.mark.parametrize("until_step", sorted(random.Random(5).sample(range(1, TOTAL_STEPS), 2)) + [TOTAL_STEPS // 2])
def test_pause_then_resume_is_byte_identical(project, reference, until_step):
    params = parse_params(fast_params())
    with pytest.raises(TrainingStopped) as stopped:
        run_training(params, "baseline", Segment(until_step=until_step))
    assert stopped.value.step == until_step and stopped.value.exit_code == 75
    assert torch.load(RESUME / "checkpoint.pt", weights_only=True)["step"] == until_step
    summary = run_training(params, "baseline").to_json()
    assert_matches_reference(reference, summary)
    assert summary["training_metrics"]["segments"] == 2
    assert summary["training_metrics"]["resumed_at_step"] == until_step
    assert_segments_back_to_back(2)
    assert len(pd.read_csv(RUN / "emissions.csv")) == 2  # CodeCarbon's own log keeps both segments' rows


@pytest.mark.slow
@pytest.mark.parametrize("both", [False, True], ids=["latest", "latest-and-previous"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_one_before_it_resumed(project, reference, capsys, both):
    """A truncated resume checkpoint failed every rerun until the folder was deleted by hand."""
    params = parse_params(fast_params())  # checkpoints every 3 steps: 3, 6, 9, then the stop at 10
    with pytest.raises(TrainingStopped):
        run_training(params, "baseline", Segment(until_step=10))
    latest, previous = RESUME / "checkpoint.pt", RESUME / "checkpoint.previous.pt"
    assert torch.load(previous, weights_only=True)["step"] == 9
    cut = latest.read_bytes()[:4096]
    latest.write_bytes(cut)
    if both:
        previous.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    summary = run_training(params, "baseline").to_json()
    [note] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("carbon-pipe:")]
    set_aside = RUN / "resume-checkpoint.pt.set-aside"  # beside the folder, which a finished run deletes
    assert note.startswith(f"carbon-pipe: note: {latest} is unreadable (") and f"set aside as {set_aside}; " in note
    assert note.endswith("starting afresh" if both else "resuming from the checkpoint before it (step 9)")
    assert set_aside.read_bytes() == cut
    assert_matches_reference(reference, summary)  # the same model bytes as a run never stopped
    assert summary["training_metrics"]["resumed_at_step"] == (0 if both else 9)


def start_training(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "baseline"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def checkpointed_step(folder: Path) -> int:
    try:
        return torch.load(folder / RESUME / "checkpoint.pt", weights_only=True)["step"]
    except (FileNotFoundError, RuntimeError, EOFError):  # not written yet (the rename is atomic, so never torn)
        return -1


def stop_at(process: subprocess.Popen, folder: Path, after_step: int, delay: float, signum: int) -> None:
    """Send `signum` `delay` seconds after the run has checkpointed `after_step` (or, for -1, once it has started)."""
    deadline = time.monotonic() + 120
    started = folder / RESUME / "fingerprint"
    while (not started.exists() if after_step < 0 else checkpointed_step(folder) < after_step):
        assert process.poll() is None, f"the run ended before the stop point: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signum)


KILL_POINTS = [(-1, 0.05)] + [
    (step, random.Random(step).uniform(0, 0.02))
    for step in random.Random(7).sample(range(3, TOTAL_STEPS * 3 // 4, 3), 2)
]


@pytest.mark.slow
@pytest.mark.parametrize("after_step, delay", KILL_POINTS)
def test_sigkill_then_resume_is_byte_identical(project, reference, after_step, delay):
    process = start_training(project)
    stop_at(process, project, after_step, delay, signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    summary = run_training(parse_params(fast_params()), "baseline").to_json()
    assert_matches_reference(reference, summary)
    # A run killed before its first checkpoint starts over; its measured energy is still counted.
    assert (summary["training_metrics"]["resumed_at_step"] or 0) >= max(after_step, 0)


@pytest.mark.slow
@pytest.mark.parametrize("after_step, delay", [(3, 0.0), (random.Random(11).randrange(6, TOTAL_STEPS // 2), 0.01)])
def test_sigterm_checkpoints_stops_and_resumes_byte_identical(project, reference, after_step, delay):
    process = start_training(project)
    stop_at(process, project, after_step, delay, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    stopped_at = checkpointed_step(project)
    assert stopped_at >= after_step
    assert f"stopped by SIGTERM after step {stopped_at} of {TOTAL_STEPS}" in stderr.strip().splitlines()[-1]
    summary = run_training(parse_params(fast_params()), "baseline").to_json()
    assert_matches_reference(reference, summary)
    # The stopped segment's energy was measured to its end and stays in the log, on the clock before the resumed one.
    assert summary["training_metrics"]["segments"] == 2 and summary["training_metrics"]["resumed_at_step"] == stopped_at
    assert_segments_back_to_back(2)


@pytest.mark.slow
def test_changed_params_discard_a_stale_checkpoint(project):
    with pytest.raises(TrainingStopped):
        run_training(parse_params(fast_params()), "baseline", Segment(until_step=5))
    changed = fast_params(train={"learning_rate": 0.001})
    summary = run_training(parse_params(changed), "baseline").to_json()
    training = summary["training_metrics"]
    assert training["discarded_stale_checkpoint"] and training["resumed_at_step"] is None and training["segments"] == 1
    # ...while a change that does not alter training (checkpoint frequency) keeps it.
    with pytest.raises(TrainingStopped):
        run_training(parse_params(changed), "baseline", Segment(until_step=5))
    params = parse_params(fast_params(train={"learning_rate": 0.001, "checkpoint_every": 7}))
    summary = run_training(params, "baseline").to_json()
    assert summary["training_metrics"]["resumed_at_step"] == 5
