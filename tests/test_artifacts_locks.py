"""One process at a time holds a run's folder (and wait-for-window's), with an OS lock that dies with
its holder. Two trainers of one run used to mix their energy journals: the first reported 8x its emissions, the
second died with KeyError 'clock_start'."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from carbon_pipe import errors
from carbon_pipe.cli import app
from carbon_pipe.layout import WINDOW_DIR, train_dir

from .conftest import synthetic_dataset, tiny_params, write_params

HOLD = """
import sys, time
from carbon_pipe.artifacts import holding
with holding(sys.argv[1], "a holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def spawn(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, **options,
    )


def test_the_lock_names_its_holder_and_dies_with_it_even_by_sigkill(tmp_path):
    from carbon_pipe.artifacts import holding

    holder = spawn("-c", HOLD, str(tmp_path / "run"))
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(errors.Busy) as refused:
        with holding(tmp_path / "run", "train baseline"):
            pytest.fail("a second holder got the lock")
    assert str(refused.value).startswith(f"train baseline: {tmp_path / 'run'} is in use by process {holder.pid} ")
    holder.send_signal(signal.SIGKILL)  # no cleanup of any kind runs: the kernel releases the lock
    holder.wait(timeout=30)
    with holding(tmp_path / "run", "train baseline"):
        assert (tmp_path / "run" / ".lock").read_text() == f"{os.getpid()}\n"


@pytest.mark.slow
def test_a_second_trainer_of_one_run_is_one_line_and_the_first_accounts_only_its_own_energy(workspace):
    write_params(workspace, tiny_params(train={"epochs": 40}))
    synthetic_dataset()
    runner = CliRunner()
    assert runner.invoke(app, ["wait-for-window"]).exit_code == 0
    first = spawn("-m", "carbon_pipe.cli", "train", "--run", "baseline", cwd=workspace)
    while "epoch 1:" not in first.stderr.readline():  # training, its journal open
        assert first.poll() is None, first.stderr.read()
    second = runner.invoke(app, ["train", "--run", "baseline"])
    assert second.exit_code == 1, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"carbon-pipe: error: train baseline: {train_dir('baseline')} is in use by process {first.pid} (it holds "
        f"{train_dir('baseline')}/.lock): wait for it to end or stop it, then run again; two at once would mix "
        "their state"
    ]
    _, rest = first.communicate(timeout=300)
    assert first.returncode == 0, rest
    summary = json.loads(Path("metrics/baseline.json").read_text())
    intervals = pd.read_csv(train_dir("baseline") / "energy_intervals.csv")
    assert set(intervals["segment"]) == {0} and summary["training_metrics"]["segments"] == 1
    assert intervals["emissions_kg"].sum() == pytest.approx(summary["carbon_metrics"]["total_emissions_kg"])


def test_two_waits_on_one_project_are_refused_while_one_runs(workspace):
    from carbon_pipe.artifacts import holding

    write_params(workspace, tiny_params())
    with holding(WINDOW_DIR, "a wait in progress"):
        result = CliRunner().invoke(app, ["wait-for-window"])
        assert sorted(path.name for path in WINDOW_DIR.iterdir()) == [".lock"]  # nothing written but the holder's
    assert not WINDOW_DIR.exists()  # the lock file goes with its holder, and the folders made for it
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: wait-for-window: {WINDOW_DIR} is in use by process {os.getpid()} (it holds "
        f"{WINDOW_DIR}/.lock): wait for it to end or stop it, then run again; two at once would mix their state"
    ]
    assert CliRunner().invoke(app, ["wait-for-window"]).exit_code == 0  # released


@pytest.mark.slow
def test_a_torchrun_job_takes_one_lock_and_every_rank_stops_when_it_is_held(workspace):
    """Rank 0 takes the run's lock for the job (the ranks share the run); held elsewhere, every rank stops."""
    from carbon_pipe.artifacts import holding

    write_params(workspace, tiny_params())
    synthetic_dataset()
    assert CliRunner().invoke(app, ["wait-for-window"]).exit_code == 0
    command = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "carbon_pipe.cli", "--",
               "train", "--run", "baseline"]
    with holding(train_dir("baseline"), "another trainer"):
        job = spawn(*command, cwd=workspace)
        _, stderr = job.communicate(timeout=300)
    assert job.returncode == 1
    assert f"carbon-pipe: error: train baseline: {train_dir('baseline')} is in use by process {os.getpid()}" in stderr
    assert "exitcode  : 1" in stderr  # a rank failed with our exit code, not a hang or a crash
    assert not (workspace / train_dir("baseline") / "resume").exists()  # refused before any rank touched the run
    job = spawn(*command, cwd=workspace)  # both ranks proceed once rank 0 holds it
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0 and stderr.count("train baseline: accuracy") == 1, stderr[-3000:]
