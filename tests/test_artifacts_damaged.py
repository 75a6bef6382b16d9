"""An artifact an earlier stage wrote, then damaged (cut short, garbled, edited, `{}`), is one line
naming the file and what to do, exit 1, never a traceback. (A damaged resume checkpoint is recovered instead:
test_resume.py.)"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from carbon_pipe.cli import app
from carbon_pipe.layout import (
    DATASET_FILE,
    DECISION_JSON,
    HORIZON_JSON,
    INTENSITY_CSV,
    run_metrics,
    run_profile_file,
    train_dir,
)

from .conftest import synthetic_dataset, tiny_params, write_params


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A project whose every stage ran (on a tiny synthetic set)."""
    folder = tmp_path_factory.mktemp("finished")
    with contextlib.chdir(folder):
        write_params(folder, tiny_params())
        synthetic_dataset()
        for command in (["wait-for-window"], ["train", "--run", "baseline"], ["train", "--run", "optimized"]):
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 0, result.stderr
    return folder


def edit_json(path: Path, change: Callable[[dict], object]) -> Callable[[], None]:
    def damage() -> None:
        record = json.loads(path.read_text())
        path.write_text(json.dumps(change(record)))

    return damage


def write(path: Path, content: bytes) -> Callable[[], None]:
    return lambda: path.write_bytes(content)


def cut_short(path: Path) -> Callable[[], None]:
    return lambda: path.write_bytes(path.read_bytes()[:5000])


def text_intensity() -> None:
    lines = INTENSITY_CSV.read_text().splitlines()
    start, end, _, forecast = lines[1].split(",")
    lines[1] = ",".join([start, end, "abc", forecast])
    INTENSITY_CSV.write_text("\n".join(lines) + "\n")


INTERVALS = train_dir("optimized") / "energy_intervals.csv"
PROFILE = run_profile_file("optimized")
TRAIN = ["train", "--run", "baseline"]
TRAIN_OPTIMIZED = ["train", "--run", "optimized"]
COMPARE = ["compare"]
CASES = [
    # (id, damage, command, file named, what the line says)
    ("dataset-cut-short", cut_short(DATASET_FILE), TRAIN, DATASET_FILE, "is unreadable"),
    ("dataset-not-a-dataset", lambda: __import__("torch").save({"x": 1}, DATASET_FILE), TRAIN, DATASET_FILE,
     "has no dataset, classes"),
    ("intensity-garbled", write(INTENSITY_CSV, b"start,end\n\x00\xff garbage,,,\n1,2,3,4,5\n"), TRAIN, INTENSITY_CSV,
     "not a readable CSV"),
    ("intensity-text", text_intensity, TRAIN, INTENSITY_CSV, "could not convert string to float: 'abc'"),
    ("intensity-empty", write(INTENSITY_CSV, b""), COMPARE, INTENSITY_CSV, "not a readable CSV"),
    ("horizon-a-list", write(HORIZON_JSON, b"[1, 2]"), TRAIN, HORIZON_JSON, "not a horizon wait-for-window wrote"),
    ("decision-missing-a-key", edit_json(DECISION_JSON, lambda d: d.pop("rule") and d), TRAIN_OPTIMIZED,
     DECISION_JSON, "(rule is missing)"),
    ("decision-a-list", edit_json(DECISION_JSON, lambda d: [d]), TRAIN_OPTIMIZED, DECISION_JSON,
     "(a JSON list, not an object)"),
    ("decision-now-a-number", edit_json(DECISION_JSON, lambda d: d["horizon"].update(now=5) or d), COMPARE,
     DECISION_JSON, "horizon.now is 5, not a time"),
    ("decision-duration-text", edit_json(DECISION_JSON, lambda d: {**d, "expected_duration_seconds": "10min"}),
     TRAIN_OPTIMIZED, DECISION_JSON, "expected_duration_seconds is '10min', not a number"),
    ("summary-empty-object", write(run_metrics("baseline"), b"{}"), COMPARE, run_metrics("baseline"),
     "(run is missing): run train --run baseline again"),
    ("summary-a-list", write(run_metrics("optimized"), b"[]"), COMPARE, run_metrics("optimized"),
     "(a JSON list, not an object)"),
    ("summary-accuracy-text", edit_json(run_metrics("baseline"), lambda s: {**s, "precision": 32}), COMPARE,
     run_metrics("baseline"), "precision is 32, not text"),
    ("summary-start-not-a-time", edit_json(run_metrics("optimized"), lambda s: s["scheduler_metrics"].update(
        start="soon") or s), COMPARE, run_metrics("optimized"), "scheduler_metrics.start is 'soon', not a time"),
    ("intervals-other-columns", write(INTERVALS, b"x,y\n1,2\n"), COMPARE, INTERVALS,
     "no column start, end, energy_kwh, emissions_kg, phase"),
    ("intervals-bad-time", lambda: INTERVALS.write_text(INTERVALS.read_text().replace("Z,", "?,", 1)), COMPARE,
     INTERVALS, "invalid time"),
    ("profile-cut-short", cut_short(PROFILE), COMPARE, PROFILE, "is not valid JSON"),
    ("profile-burst-joules-text", edit_json(PROFILE, lambda p: p["profile"]["bursts"][0].update(joules="1 J") or p),
     COMPARE, PROFILE, "profile.bursts.0.joules is '1 J', not a number): remove it and run train --run optimized"),
    ("epochs-garbled", write(train_dir("baseline") / "epochs.csv", b"\xff\xfe\x00"), COMPARE,
     train_dir("baseline") / "epochs.csv", "epochs.csv"),
]


@pytest.mark.slow  # trains every stage once, in a module fixture
@pytest.mark.parametrize("damage, command, named, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_artifact_is_one_line_naming_it(finished, workspace, damage, command, named, says):
    shutil.copytree(finished, workspace, dirs_exist_ok=True)
    damage()
    result = CliRunner().invoke(app, command)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and isinstance(result.exception, (SystemExit, type(None))), lines
    errors = [line for line in lines if line.startswith("carbon-pipe: error: ")]
    assert len(errors) == 1 and errors == lines[-1:], lines
    assert errors[0].startswith(f"carbon-pipe: error: {named}") and says in errors[0], errors[0]
