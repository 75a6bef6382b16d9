"""`carbon-pipe run -- CMD` outside a pipeline: with no plan it says so in one line and starts now, or plans and
waits for the window (--unplanned plan); a command's option given before `--` gets a hint, not a bare error."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from carbon_pipe.timeutil import parse_instant

COMMAND = [sys.executable, "-c", "print('trained')"]


def carbon_pipe(folder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carbon_pipe.cli", *args], cwd=folder, capture_output=True, text=True)


@pytest.mark.refused_before_training
def test_a_commands_option_before_the_dashes_gets_a_hint(tmp_path):
    result = carbon_pipe(tmp_path, "run", "--run", "mine", "python", "train.py", "--seconds", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: run has no option --seconds: your command's own options go after `--`, as in "
        "carbon-pipe run --run NAME -- python train.py --seconds ..."
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_without_a_plan_or_a_params_file_it_says_so_and_starts_now(tmp_path):
    before = time.time()
    result = carbon_pipe(tmp_path, "run", "--run", "mine", "--", *COMMAND)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "run: no plan here (stages/wait-for-window/horizon.json is missing and there is no dvc.yaml): starting now "
        "(--unplanned plan waits for the low-carbon window)"
    )
    summary = json.loads((tmp_path / "metrics" / "mine.json").read_text())
    assert before <= parse_instant(summary["scheduler_metrics"]["start"]) <= time.time()
    assert summary["carbon_metrics"]["total_emissions_kg"] > 0


@pytest.mark.slow
def test_unplanned_plan_waits_for_the_window_before_starting(tmp_path):
    now = int(time.time())
    clean = now + 6  # a clean minute 6 s from now, 400 g/kWh before it
    rows = [f"{t},{100 if clean <= t < clean + 60 else 400}" for t in range(now - 10, now + 300)]
    (tmp_path / "grid.csv").write_text("timestamp,carbon_intensity\n" + "\n".join(rows) + "\n")
    params = {
        "carbon": {"sources": ["csv"], "horizon": "4min", "csv": {"path": "grid.csv"}},
        "scheduler": {"max_wait": "1min", "expected_duration": "2s", "replan_interval": "1h"},
        "energy": {"measure_power_secs": 1},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = carbon_pipe(tmp_path, "run", "--run", "mine", "--unplanned", "plan", "--", *COMMAND)
    assert result.returncode == 0, result.stderr
    assert "planning the low-carbon window now" in result.stderr.splitlines()[0]
    summary = json.loads((tmp_path / "metrics" / "mine.json").read_text())
    assert parse_instant(summary["scheduler_metrics"]["start"]) >= clean
    assert summary["carbon_metrics"]["mean_intensity_g_per_kwh"] == pytest.approx(100)


@pytest.mark.slow
def test_inside_a_pipeline_a_missing_plan_is_still_an_error(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    result = carbon_pipe(tmp_path, "run", "--run", "mine", "--", *COMMAND)
    assert result.returncode != 0 and "horizon.json" in result.stderr
    assert not (tmp_path / "metrics").exists()
