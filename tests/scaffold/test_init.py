"""`carbon-pipe init` in a git repository of your own, `params --defaults`, and `carbon-pipe experiments`: the files
it writes, what it refuses, and (slow) a project with a plain-Python training script through `dvc repro` and
`dvc exp run -S` without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from carbon_pipe.config.params import Params, parse_params
from carbon_pipe.scaffold.experiments import experiments, render, table
from carbon_pipe.scaffold.project import defaults_yaml

from ..conftest import VENV_BIN

# About twenty lines of training, no torch: what the project under test runs as its own command.
TRAIN = '''\
"""Logistic regression on one feature, in plain Python."""
import argparse, json, math, os, random
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()
random.seed(0)
points = [(x, int(x > 0.2)) for x in (random.uniform(-1, 1) for _ in range(500))]
w = b = 0.0
for epoch in range(args.epochs):
    for x, y in points:
        p = 1 / (1 + math.exp(-(w * x + b)))
        w, b = w + 0.5 * (y - p) * x, b + 0.5 * (y - p)
right = sum((w * x + b > 0) == bool(y) for x, y in points)
with open(os.environ.get("CARBON_PIPE_METRICS", "metrics.json"), "w") as handle:
    json.dump({"final_accuracy": 100 * right / len(points)}, handle)
'''


def run(folder, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=folder, capture_output=True, text=True, env=env)


def carbon_pipe(folder, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run(folder, sys.executable, "-m", "carbon_pipe.cli", *args, env=env)


@pytest.fixture
def repository(tmp_path):
    assert run(tmp_path, "git", "init", "-q").returncode == 0
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


@pytest.mark.slow
def test_init_for_your_own_command_writes_three_files_and_runs_dvc_init(repository):
    result = carbon_pipe(repository, "init", "--command", "python train.py --epochs 3", "--duration", "1min")
    assert result.returncode == 0, result.stderr
    assert (repository / ".dvc").is_dir() and "dvc init: DVC initialised" in result.stderr
    stages = yaml.safe_load((repository / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["wait-for-window", "train-baseline", "train-optimized", "compare"]
    assert stages["train-optimized"]["cmd"] == "carbon-pipe run --run optimized -- python train.py --epochs 3"
    assert "train.py" in stages["train-baseline"]["deps"]  # the script the command names: an edit reruns it
    raw = yaml.safe_load((repository / "params.yaml").read_text())
    assert raw["scheduler"]["expected_duration"] == "1min" and raw["carbon"] == {} and raw["energy"] == {}
    for stage in stages.values():  # every section a stage lists is in the file, as DVC needs
        assert all(key in raw for key in stage.get("params", []))
    params = parse_params(raw)
    assert params.energy == Params().energy and params.scheduler.clock == "simulated"
    assert "python train.py --epochs 3" in (repository / "CARBON_PIPE.md").read_text()


@pytest.mark.slow
def test_init_refuses_to_overwrite_without_force_and_writes_nothing(repository):
    (repository / "params.yaml").write_text("mine: true\n")
    result = carbon_pipe(repository, "init", "--command", "python train.py")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: params.yaml already there: nothing written (--force overwrites)"
    ]
    assert sorted(p.name for p in repository.iterdir()) == [".git", "params.yaml", "train.py"]
    assert (repository / "params.yaml").read_text() == "mine: true\n"
    assert carbon_pipe(repository, "init", "--command", "python train.py", "--force").returncode == 0
    assert "mine" not in (repository / "params.yaml").read_text()


@pytest.mark.slow
def test_init_for_the_built_in_trainer_on_an_image_folder(repository):
    (repository / "images").mkdir()
    result = carbon_pipe(repository, "init", "--images", "images", "--source", "uk,mock", "--clock", "real")
    assert result.returncode == 0, result.stderr
    stages = yaml.safe_load((repository / "dvc.yaml").read_text())["stages"]
    assert stages["fetch-data"]["deps"] == ["images"]
    assert stages["train-baseline"]["cmd"] == "carbon-pipe train --run baseline"
    params = parse_params(yaml.safe_load((repository / "params.yaml").read_text()))
    assert (params.data.dataset, params.data.path, params.carbon.sources) == ("folder", "images", ["uk", "mock"])
    assert params.scheduler.clock == "real" and params.scheduler.now is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "nowhere"], "--images: nowhere: no such folder"),
        (["--command", "python train.py", "--images", "x"], "--command and --images: choose one"),
        (["--clock", "sundial"], "--clock: expected simulated or real"),
        (["--source", "moon"], "carbon.sources.0: Input should be"),
        (["--ask"], "--ask: prompts need a terminal"),
    ],
)
def test_bad_init_options_are_one_line_and_write_nothing(repository, args, message):
    result = carbon_pipe(repository, "init", *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert sorted(p.name for p in repository.iterdir()) == [".git", "train.py"]


def test_init_outside_a_git_repository_says_to_run_git_init(tmp_path):
    result = carbon_pipe(tmp_path, "init")
    assert result.returncode == 2 and "not in a git repository; run `git init` first" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_params_defaults_is_a_full_params_file_of_the_defaults(tmp_path):
    printed = carbon_pipe(tmp_path, "params", "--defaults")
    assert printed.returncode == 0 and printed.stdout == defaults_yaml()
    assert parse_params(yaml.safe_load(printed.stdout)) == Params()
    assert set(yaml.safe_load(printed.stdout)) == set(Params.model_fields)


SHOWN = [
    {"rev": "workspace", "name": None, "data": {
        "params": {"params.yaml": {"data": {"scheduler": {"max_wait": "6h", "now": "x"}}}},
        "metrics": {"metrics/summary.json": {"data": {
            "optimized_co2_g": 1.5, "baseline_co2_g": 3.0, "co2_reduction_pct": 50.0, "schedule_effect_g": 1.2,
            "schedule_effect_g_low": 1.0, "schedule_effect_g_high": 1.4, "configuration_effect_g": None,
            "optimized_accuracy_pct": 91.0, "baseline_accuracy_pct": 90.5, "optimized_time_s": 12.0,
            "baseline_time_s": 10.0, "optimized_wait_h": 3.5, "optimized_energy_wh": 2.0}}}}},
    {"rev": "a" * 40, "name": "main", "data": {
        "params": {"params.yaml": {"data": {"scheduler": {"now": "x"}}}}, "metrics": {}},
     "experiments": [{"name": "bushy-oaks", "revs": [{"rev": "b" * 40, "name": "bushy-oaks", "data": {
         "params": {"params.yaml": {"data": {"scheduler": {"max_wait": "6h", "now": "x"}}}}, "metrics": {}}}]}]},
]


def test_the_experiments_view_shows_only_the_params_that_differ_and_the_effects_with_intervals():
    rows = experiments(SHOWN)
    assert [row.name for row in rows] == ["workspace", "main", "bushy-oaks"]
    headers, cells = table(rows)
    assert len(headers) == 11
    changed = ["scheduler.max_wait=6h", "scheduler.max_wait=(default)", "scheduler.max_wait=6h"]
    assert [row[1] for row in cells] == changed
    figures = ["1.5", "3", "50.0", "1.2 [1, 1.4]", "not profiled", "91.00 / 90.50", "12.0 / 10.0", "3.50", "2"]
    assert cells[0][2:] == figures
    assert cells[1][2] == "no metrics"
    assert render(headers, cells, markdown=True).splitlines()[1] == "|" + "---|" * 11


def test_an_experiment_whose_summary_compare_did_not_write_says_so_in_its_row():
    shown = [{"rev": "workspace", "name": None, "data": {"params": {}, "metrics": {"metrics/summary.json": {
        "data": {"optimized_co2_g": "1.5 g"}}}}}]
    _, cells = table(experiments(shown))
    assert cells[0][2] == "unreadable metrics (optimized_co2_g is '1.5 g', not a number)"


@pytest.mark.slow
def test_an_own_command_project_reproduces_and_runs_experiments_without_torch(repository, tmp_path_factory):
    guard = tmp_path_factory.mktemp("no-torch")
    (guard / "torch.py").write_text("raise ImportError('an own-command project must not import torch')\n")
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))}
    for command in (["git", "config", "user.email", "t@t.invalid"], ["git", "config", "user.name", "t"]):
        run(repository, *command)
    init = carbon_pipe(repository, "init", "--command", "python train.py", "--duration", "1min", env=env)
    assert init.returncode == 0, init.stderr
    repro = run(repository, "dvc", "repro", env=env)
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    summary = json.loads((repository / "metrics" / "summary.json").read_text())
    assert summary["optimized_accuracy_pct"] > 90 and summary["optimized_co2_g"] > 0
    run(repository, "git", "add", "-A")
    run(repository, "git", "commit", "-qm", "init and a first run")
    experiment = run(repository, "dvc", "exp", "run", "-S", "+scheduler.max_wait=6h", env=env)
    assert experiment.returncode == 0, experiment.stdout[-2000:] + experiment.stderr[-2000:]
    shown = carbon_pipe(repository, "experiments", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [row["params"].get("scheduler.max_wait") for row in rows][-1] == "6h"
    assert all(row["summary"]["optimized_co2_g"] > 0 for row in rows)
