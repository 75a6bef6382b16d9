"""The fault table (docs/faults.md), the rows not covered elsewhere: a tracker that fails, and a full disk at a
checkpoint. Both use real failures (a CodeCarbon setting it cannot parse; a file-size limit the kernel enforces)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys

import pytest
import torch

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import ArtifactError, TrainingStopped
from carbon_pipe.pipeline import compare, wait_for_window
from carbon_pipe.timeutil import parse_instant
from carbon_pipe.training.segments import Segment

from ..conftest import default_params, run_training, synthetic_dataset, tiny_params
from ..training.test_resume import RESUME, assert_matches_reference, fast_params, prepare, reference  # noqa: F401 (fixture)


@pytest.mark.slow
def test_a_failing_tracker_never_stops_training_and_makes_the_comparison_say_so(workspace, monkeypatch):
    params = parse_params(tiny_params())
    synthetic_dataset()
    wait_for_window.run_stage(params, say=lambda line: None)
    run_training(params, "baseline")
    monkeypatch.setenv("CODECARBON_PUE", "not-a-number")  # CodeCarbon swallows the error and measures nothing
    summary = run_training(params, "optimized").to_json()
    carbon = summary["carbon_metrics"]
    assert summary["training_metrics"]["final_accuracy"] > 0  # the model trained all the same
    assert (workspace / "stages/train-optimized/model.pt").is_file()
    assert carbon["total_emissions_kg"] is None and carbon["energy_consumed_kwh"] is None
    assert "CodeCarbon recorded no measurement" in carbon["energy_error"]
    result = compare.run_stage().to_json()
    assert result["comparable"] is False
    assert result["not_comparable_reason"].startswith("energy unknown for optimized: ")
    assert "CodeCarbon recorded no measurement" in result["not_comparable_reason"]
    assert "carbon_savings" not in result and "decomposition" not in result  # no invented numbers
    saved = json.loads((workspace / "metrics/comparison.json").read_text())
    assert saved["comparable"] is False
    assert "Not comparable" in (workspace / "stages/compare/report.md").read_text()


def limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_disk_full_at_a_checkpoint_keeps_the_last_one_and_a_rerun_finishes_exactly(project, reference):  # noqa: F811
    with pytest.raises(TrainingStopped):
        run_training(parse_params(fast_params()), "baseline", Segment(until_step=5))
    checkpoint = project / RESUME / "checkpoint.pt"
    size = checkpoint.stat().st_size
    full = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "baseline"],
        cwd=project, capture_output=True, text=True, preexec_fn=limit_file_size(size // 2),
    )
    assert full.returncode == 1, full.stderr
    assert full.stderr.strip().splitlines()[-1] == (
        f"carbon-pipe: error: cannot write {RESUME / 'checkpoint.pt'}: File too large; the previous version is kept"
    )
    assert torch.load(checkpoint, weights_only=True)["step"] == 5  # the last good checkpoint, whole
    assert not list((project / RESUME).glob(".*.tmp"))
    summary = run_training(parse_params(fast_params()), "baseline").to_json()  # space again: resume and finish
    assert summary["training_metrics"]["resumed_at_step"] == 5
    assert_matches_reference(reference, summary)


@pytest.fixture
def project(workspace):
    prepare(workspace, fast_params())
    return workspace


def test_when_every_source_fails_nothing_is_planned_or_written(workspace, unused_port, monkeypatch):
    from typer.testing import CliRunner

    from carbon_pipe.cli import app

    from ..conftest import default_params, write_params

    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "x")
    raw = default_params()
    down = f"http://127.0.0.1:{unused_port}"
    raw["carbon"].update(sources=["uk", "electricitymaps"], fallback=True)
    raw["carbon"]["uk"].update(base_url=down, retries=0)
    raw["carbon"]["electricitymaps"].update(base_url=down, retries=0)
    write_params(workspace, raw)
    result = CliRunner().invoke(app, ["wait-for-window"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("carbon-pipe: error: every source failed: uk: ") and "; electricitymaps: " in line
    assert sorted(path.name for path in workspace.iterdir()) == ["params.yaml"]


@pytest.mark.slow
def test_a_run_that_outlasts_the_intensity_horizon_is_refused_before_writing(workspace):
    from ..training.test_pausing import SLOW_MODEL

    (workspace / "slow_model.py").write_text(SLOW_MODEL)  # 0.2 s a forward pass: the run lasts several seconds
    # Intensities for 3 s from the submission, one a second (finer than the mock source's minute points).
    submitted = parse_instant(default_params()["scheduler"]["now"])
    (workspace / "trace.csv").write_text(
        "timestamp,carbon_intensity\n" + "".join(f"{submitted + second:.0f},300\n" for second in range(3))
    )
    raw = tiny_params(
        model={"class": "slow_model:SlowCNN", "kwargs": {}},
        carbon={"sources": ["csv"], "csv": {"path": "trace.csv"}, "horizon": "2s"},
        scheduler={"rule": "now", "max_wait": "1s", "expected_duration": "1s"},
    )
    params = parse_params(raw)
    synthetic_dataset(train=1024, test=32, size=12)  # 16 steps of 64: over 3 s
    wait_for_window.run_stage(params, say=lambda line: None)
    with pytest.raises(ArtifactError, match=r"after the intensity horizon .*: raise carbon.horizon"):
        run_training(params, "baseline")
    assert not (workspace / "metrics/baseline.json").exists()
    assert not [path.name for path in (workspace / "stages/train-baseline").iterdir() if path.name != "resume"]
