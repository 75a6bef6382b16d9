"""examples/own-script as a user runs it: copied out, `git init`, `dvc init`, `dvc repro` with the installed
carbon-pipe. The optimized run of its own script (train.py) follows a 2-chunk plan, is stopped with SIGTERM at the
first chunk's end, resumes from its own checkpoint in the second, and ends with the model bytes of the same script
run on its own in one go."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from carbon_pipe.timeutil import iso, parse_instant

from ..conftest import REPO, VENV_BIN

EXAMPLE = REPO / "examples" / "own-script"
SUBMITTED = parse_instant("2025-01-15T18:00:00Z")
OPTIMIZED = ["--data", "data/points.pt", "--epochs", "10", "--lr", "0.001", "--batch-size", "64", "--seed", "0"]


def run(project: Path, *command: str, **env: str) -> str:
    environment = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1", **env}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environment)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def two_clean_stretches(path: Path, seconds: int) -> None:
    """The example's grid.csv with its clean stretches (21:00 and 23:00) `seconds` long."""
    points = [(0, 400), (3 * 3600, 100), (3 * 3600 + seconds, 400), (5 * 3600, 100), (5 * 3600 + seconds, 400)]
    points += [(hours * 3600, 400) for hours in (9, 15, 21, 24)]
    path.write_text("timestamp,carbon_intensity\n" + "".join(f"{iso(SUBMITTED + t)},{v}\n" for t, v in points))


@pytest.mark.slow
def test_the_own_script_example_pauses_resumes_and_ends_with_the_bytes_of_one_go(tmp_path):
    project = tmp_path / "my-script"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "out", "stages", "metrics", "dvc.lock"))
    run(project, sys.executable, "prepare.py", "--out", "data/points.pt", "--seed", "0")
    started = time.monotonic()  # the script on its own, in one go: the reference, and how long a chunk should be
    run(project, sys.executable, "train.py", *OPTIMIZED)
    chunk = max(1, round(0.4 * (time.monotonic() - started)))  # it is stopped well inside its run (at step 1 or more)
    two_clean_stretches(project / "grid.csv", chunk)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["scheduler"]["expected_duration"] = f"{2 * chunk}s"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run(project, "git", "init", "-q")
    run(project, "dvc", "init", "-q")
    run(project, "dvc", "repro")

    assert (project / "stages/train-optimized/model.pt").read_bytes() == (project / "out/model.pt").read_bytes()
    optimized = json.loads((project / "metrics/optimized.json").read_text())
    chunks = optimized["scheduler_metrics"]["chunks"]
    assert [ran["start"] for ran in chunks] == [iso(SUBMITTED + 3 * 3600), iso(SUBMITTED + 5 * 3600)], optimized
    first, second = optimized["command"]["launches"]
    assert first["stopped_for_pause"] and first["exit_code"] == 143  # it checkpointed on SIGTERM and exited
    assert second["exit_code"] == 0 and not second["stopped_for_pause"]
    resumed_at = optimized["command"]["extra"]["resumed_at_step"]
    assert len(resumed_at) == 1 and 0 < resumed_at[0] < 10 * 4096 // 64  # from its own checkpoint, mid-training
    assert optimized["training_metrics"]["final_accuracy"] > 80 and optimized["training_metrics"]["epochs"] == 10

    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["baseline_co2_g"] > 0 and summary["optimized_co2_g"] > 0 and summary["optimized_wait_h"] == 3
    assert summary["optimized_accuracy_pct"] == optimized["training_metrics"]["final_accuracy"]
    assert json.loads(run(project, "dvc", "status", "--json")) == {}
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "a run", "--no-gpg-sign", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    diff = json.loads(run(project, "dvc", "metrics", "diff", "--all", "--json"))
    assert diff["metrics/summary.json"]["co2_reduction_pct"]["new"] == summary["co2_reduction_pct"]
