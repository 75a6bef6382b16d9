"""`carbon-pipe run`: your own command as a run. Real processes, real CodeCarbon, real signals.

Each test plans with wait-for-window (the mock curve, simulated clock) in a scratch folder, then runs small Python
commands under `carbon-pipe run` as a user would: the installed command in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from carbon_pipe.command.reported import read_reported
from carbon_pipe.errors import UsageError
from carbon_pipe.timeutil import iso, parse_instant
from carbon_pipe.training.run_summary import CarbonMetrics, RunSummary, SchedulerMetrics, TrainingMetrics

from ..conftest import VENV_BIN, default_params, write_params

# A command for the tests: burn CPU (itself, or in a grandchild through a child), sleep, note the signals it gets.
TOOL = r'''
import json, os, pathlib, signal, subprocess, sys, time

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

mode, seconds = sys.argv[1], float(sys.argv[2])
if mode == "self":
    burn(seconds)
elif mode == "grandchild":  # this process waits for a child, which waits for the grandchild that burns
    subprocess.run([sys.executable, __file__, "child", str(seconds)], check=True)
elif mode == "child":
    subprocess.run([sys.executable, __file__, "self", str(seconds)], check=True)
elif mode == "idle":
    time.sleep(seconds)
elif mode == "fail-once":  # fails the first time (after some work), succeeds when run again
    burn(seconds)
    if not pathlib.Path("failed-once").exists():
        pathlib.Path("failed-once").touch()
        sys.exit(3)
    json.dump({"final_accuracy": 87.5, "train_samples": 10, "epochs": [{"epoch": 1, "test_accuracy": 87.5}],
               "extra": {"note": "any"}}, open(os.environ["CARBON_PIPE_METRICS"], "w"))
elif mode == "deaf-once":  # the first time, deaf to SIGTERM (killed after the grace period); then done at once
    if not pathlib.Path("deaf-once").exists():
        pathlib.Path("deaf-once").touch()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(seconds)
elif mode == "ticks":  # `seconds` of work in quarter-second ticks; the count is its checkpoint, SIGTERM stops it
    stops = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stops.append(signum))
    saved = pathlib.Path(os.environ["CARBON_PIPE_CHECKPOINT_DIR"]) / "ticks"
    ticks = int(saved.read_text()) if saved.exists() else 0
    resumed_at = ticks
    while ticks < seconds * 4 and not stops:
        burn(0.25)
        ticks += 1
        saved.write_text(str(ticks))
    if stops:
        sys.exit(143)
    json.dump({"extra": {"ticks": ticks, "resumed_at": resumed_at}}, open(os.environ["CARBON_PIPE_METRICS"], "w"))
elif mode in ("note", "stubborn"):  # note each signal in a file; "stubborn" ignores them, "note" exits on one
    role = sys.argv[3]
    def noted(signum, frame):
        pathlib.Path(f"{role}-got-{signal.Signals(signum).name}").touch()
        if mode == "note":
            sys.exit(128 + signum)
    signal.signal(signal.SIGINT, noted)
    signal.signal(signal.SIGTERM, noted)
    if role == "parent":
        child = subprocess.Popen([sys.executable, __file__, mode, str(seconds), "child"])
    pathlib.Path(f"{role}-ready").write_text(str(os.getpid()))
    time.sleep(seconds)
'''


def carbon_pipe(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([f"{VENV_BIN}/carbon-pipe", *args], capture_output=True, text=True, **kwargs)


@pytest.fixture
def planned(workspace) -> Path:
    """Params with 1-second energy intervals, the tool, and a plan (the baseline sits at 18:00 submission)."""
    params = default_params()
    params["energy"]["measure_power_secs"] = 1
    params["command"]["grace_period"] = "1s"
    write_params(workspace, params)
    (workspace / "tool.py").write_text(TOOL)
    result = carbon_pipe("wait-for-window")
    assert result.returncode == 0, result.stderr
    return workspace


def run(name: str, *command: str) -> subprocess.CompletedProcess:
    return carbon_pipe("run", "--run", name, "--", sys.executable, "tool.py", *command)


def intervals(name: str) -> pd.DataFrame:
    frame = pd.read_csv(f"stages/train-{name}/energy_intervals.csv")
    frame["start_s"], frame["end_s"] = frame["start"].map(parse_instant), frame["end"].map(parse_instant)
    return frame


def summary(name: str) -> dict:
    return json.loads(Path(f"metrics/{name}.json").read_text())


def time_weighted_intensity(start: float, end: float) -> float:
    """From wait-for-window's intensity.csv, independently of carbon-pipe's accounting."""
    series = pd.read_csv("stages/wait-for-window/intensity.csv")
    starts, ends = series["start"].map(parse_instant).to_numpy(), series["end"].map(parse_instant).to_numpy()
    overlap = np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0, None)
    return float((overlap * series["carbon_intensity"].to_numpy()).sum() / (end - start))


@pytest.mark.slow
def test_a_grandchilds_cpu_counts_as_the_commands_and_the_intervals_cover_the_run(planned):
    """Six CPU-seconds burnt by the command's grandchild are measured as the same seconds burnt by the command itself,
    less what CodeCarbon's process mode cannot see: it samples the process tree every second, so it counts a new
    process from its first sample and a reaped one up to its last (up to a second at each end of the grandchild,
    and the child's few start-up milliseconds); never more. A command that sleeps as long costs next to nothing."""
    for mode in ("self", "grandchild", "idle"):
        result = run(mode, mode, "6")
        assert result.returncode == 0, result.stderr
    cpu = {mode: intervals(mode)["cpu_energy_kwh"].sum() for mode in ("self", "grandchild", "idle")}
    kernel = {mode: summary(mode)["command"]["launches"][0]["cpu_seconds"] for mode in ("self", "grandchild")}
    assert kernel["self"] >= 6 and kernel["grandchild"] >= 6  # the burner is in the tree, as the kernel counts it
    per_cpu_second = cpu["self"] / kernel["self"]  # the command itself is seen whole: there at start, a zombie at end
    seen = cpu["grandchild"] / per_cpu_second
    assert kernel["grandchild"] - 2.5 <= seen <= 1.05 * kernel["grandchild"]
    assert cpu["idle"] < 0.05 * cpu["self"]

    for mode in ("self", "grandchild"):
        rows, run_summary = intervals(mode), summary(mode)
        start = parse_instant(run_summary["scheduler_metrics"]["start"])
        seconds = run_summary["training_metrics"]["total_time_seconds"]
        assert rows["start_s"].iloc[0] == start == parse_instant("2025-01-15T18:00:00Z")  # at submission
        assert (rows["start_s"].iloc[1:].to_numpy() == rows["end_s"].iloc[:-1].to_numpy()).all()  # back to back
        assert start + seconds <= rows["end_s"].iloc[-1] <= start + seconds + 5  # to the end, plus the last reading
        for row in rows.itertuples():
            assert row.intensity_g_per_kwh == pytest.approx(time_weighted_intensity(row.start_s, row.end_s))
        assert run_summary["carbon_metrics"]["total_emissions_kg"] == pytest.approx(
            (rows["energy_kwh"] * rows["intensity_g_per_kwh"]).sum() / 1000, rel=1e-9
        )
        assert run_summary["carbon_metrics"]["energy_consumed_kwh"] == pytest.approx(rows["energy_kwh"].sum())


@pytest.mark.slow
def test_a_failing_command_fails_the_stage_with_its_code_and_keeps_its_energy(planned):
    failed = run("baseline", "fail-once", "1.5")
    assert failed.returncode == 3
    assert failed.stderr.strip().splitlines()[-1].startswith(
        "carbon-pipe: error: run baseline: the command failed (exit code 3) after "
    )
    first = summary("baseline")
    assert first["command"]["status"] == "failed" and first["command"]["exit_code"] == 3
    assert first["carbon_metrics"]["energy_consumed_kwh"] > 0 and first["carbon_metrics"]["energy_error"] is None
    assert first["training_metrics"]["final_accuracy"] is None  # it reported nothing: null, and said so
    assert "final_accuracy" in first["command"]["not_reported"]
    assert set(intervals("baseline")["segment"]) == {0}
    assert Path("stages/train-baseline/resume/energy-node0.csv").is_file()  # kept, so a rerun resumes

    again = run("baseline", "fail-once", "1.5")  # `dvc repro` again: the same command, the journal kept
    assert again.returncode == 0, again.stderr
    second = summary("baseline")
    assert second["command"]["status"] == "finished" and second["training_metrics"]["segments"] == 2
    assert [launch["exit_code"] for launch in second["command"]["launches"]] == [3, 0]
    assert set(intervals("baseline")["segment"]) == {0, 1}
    assert second["carbon_metrics"]["energy_consumed_kwh"] > first["carbon_metrics"]["energy_consumed_kwh"]
    assert second["training_metrics"]["final_accuracy"] == 87.5 and second["command"]["extra"] == {"note": "any"}
    assert pd.read_csv("stages/train-baseline/epochs.csv").to_dict("records")[0]["test_accuracy"] == 87.5
    assert not Path("stages/train-baseline/resume").exists()  # finished: nothing to resume


def start_in_background(*command: str) -> subprocess.Popen:
    """carbon-pipe in a session of its own: a signal the test sends reaches carbon-pipe only, not the command."""
    return subprocess.Popen(
        [f"{VENV_BIN}/carbon-pipe", "run", "--run", "baseline", "--", sys.executable, "tool.py", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for(path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_is_passed_on_to_the_commands_process_group_and_its_energy_kept(planned):
    process = start_in_background("note", "60", "parent")
    wait_for("parent-ready")
    wait_for("child-ready")
    time.sleep(1.5)  # a measurement or two
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert Path("parent-got-SIGINT").exists() and Path("child-got-SIGINT").exists()
    assert stderr.strip().splitlines()[-1].startswith("carbon-pipe: error: run baseline: stopped by SIGINT")
    journal = pd.read_csv("stages/train-baseline/resume/energy-node0.csv")
    assert len(journal) >= 1 and (journal["segment"] == 0).all()  # journalled, for the rerun to account


@pytest.mark.slow
def test_a_second_signal_kills_a_command_that_ignores_the_first(planned):
    process = start_in_background("stubborn", "60", "parent")
    wait_for("parent-ready")
    wait_for("child-ready")
    os.kill(process.pid, signal.SIGTERM)
    wait_for("parent-got-SIGTERM")
    wait_for("child-got-SIGTERM")
    time.sleep(0.5)
    assert process.poll() is None  # it waits for the command, which ignored the signal
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 143
    for role in ("parent", "child"):  # both killed: the whole group
        assert not running(int(Path(f"{role}-ready").read_text()))


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopted it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_a_command_that_cannot_start_or_a_bad_run_name_is_one_line(planned):
    missing = carbon_pipe("run", "--run", "baseline", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert missing.stderr.strip() == "carbon-pipe: error: run: command not found: no-such-command-here"
    Path("not-executable.sh").write_text("true\n")
    refused = carbon_pipe("run", "--run", "baseline", "--", "./not-executable.sh")
    assert refused.returncode == 126
    assert not Path("stages/train-baseline").exists()  # never launched: no resume folder left to resume
    bad = carbon_pipe("run", "--run", "../x", "--", "true")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "carbon-pipe: error: --run: '../x' is not a run name (letters, digits, '.', '_', '-')"
    assert not Path("metrics/baseline.json").exists()


@pytest.mark.slow
def test_the_command_gets_its_run_folders_in_the_environment(planned):
    script = (
        "import json, os; json.dump({k: os.environ[k] for k in ('CARBON_PIPE_RUN', 'CARBON_PIPE_OUT', "
        "'CARBON_PIPE_METRICS', 'CARBON_PIPE_CHECKPOINT_DIR')}, open('seen.json', 'w'))"
    )
    result = carbon_pipe("run", "--run", "mine", "--", sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    seen = json.loads(Path("seen.json").read_text())
    assert seen["CARBON_PIPE_RUN"] == "mine"
    assert seen["CARBON_PIPE_OUT"] == str(planned.resolve() / "stages/train-mine")
    assert Path(seen["CARBON_PIPE_METRICS"]).parent == Path(seen["CARBON_PIPE_CHECKPOINT_DIR"]).parent
    assert Path(seen["CARBON_PIPE_CHECKPOINT_DIR"]).parent == planned.resolve() / "stages/train-mine/resume"
    mine = summary("mine")
    assert mine["scheduler_metrics"]["placement"].startswith("submission time")  # another name: like the baseline
    assert mine["command"]["metrics_file_written"] is False
    assert mine["command"]["not_reported"][:3] == ["final_accuracy", "final_loss", "test_loss"]


@pytest.mark.parametrize(
    "text, line",
    [
        ('{"final_acuracy": 90}', "final_acuracy: not a key of the contract (free-form figures go under extra)"),
        ('{"final_accuracy": "90 %"}', "final_accuracy: Input should be a valid number"),
        ('{"final_accuracy": 190}', "final_accuracy: Input should be less than or equal to 100"),
        ('{"final_loss": NaN}', "final_loss: Input should be a finite number"),
        ('{"epochs": [{"train_loss": 1.0}]}', "epochs.0.epoch: Field required"),
        ('{"compile": "yes"}', "compile: Input should be a valid boolean"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"final_accuracy": 9', "not valid JSON (Expecting ',' delimiter, line 1)"),
    ],
)
def test_a_metrics_file_that_breaks_the_contract_is_one_line_naming_the_key(tmp_path, text, line):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        read_reported(path)
    assert str(raised.value) == f"$CARBON_PIPE_METRICS ({path}): {line}"


def test_a_metrics_file_keeps_what_it_says_and_nothing_else(tmp_path):
    path = tmp_path / "metrics.json"
    assert read_reported(path)[1] is False  # no file: every figure null
    path.write_text('{"final_accuracy": 91, "epochs": [{"epoch": 1, "test_accuracy": 91, "seconds": 2.5}]}')
    reported, found = read_reported(path)
    assert found and reported.final_accuracy == 91.0 and reported.final_loss is None
    assert reported.epoch_rows() == [
        {"epoch": 1, "train_loss": None, "test_loss": None, "test_accuracy": 91.0, "seconds": 2.5}
    ]
    assert "final_accuracy" not in reported.not_reported() and "final_loss" in reported.not_reported()


def required(model) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items() if field.is_required()}


@pytest.mark.slow
def test_two_command_runs_have_trains_keys_and_compare_reads_them_without_their_figures(planned):
    """compare (and `dvc metrics diff` on its summary.json) read two command runs as two `train` runs; figures the
    commands did not report stay null there (compare used to subtract them), and the report says "not reported" for
    them, with no rows of the energy profile that command runs never have."""
    assert run("baseline", "self", "1.5").returncode == 0
    assert carbon_pipe("run", "--run", "optimized", "--", "true").returncode == 0  # over before a memory sample
    sections = {
        "training_metrics": TrainingMetrics, "carbon_metrics": CarbonMetrics, "scheduler_metrics": SchedulerMetrics
    }
    for name in ("baseline", "optimized"):  # every key `train` always writes (the run summary's model)
        mine = summary(name)
        assert required(RunSummary) <= set(mine)
        for section, model in sections.items():
            assert required(model) <= set(mine[section]), section
    assert summary("optimized")["memory_metrics"]["peak_memory_mb"] is None

    compared = carbon_pipe("compare")
    assert compared.returncode == 0, compared.stderr
    key_metrics = json.loads(Path("metrics/summary.json").read_text())
    assert key_metrics["baseline_co2_g"] > 0 and key_metrics["optimized_wait_h"] == 9
    assert key_metrics["baseline_accuracy_pct"] is None and key_metrics["memory_reduction_pct"] is None
    comparison = json.loads(Path("metrics/comparison.json").read_text())
    assert comparison["comparable"] and comparison["accuracy_impact"]["difference_points"] is None
    report = Path("stages/compare/report.md").read_text()
    assert "| accuracy (%) | not reported | not reported |" in report and "n/a" not in report.split("## Software")[0]
    assert "| peak memory (MB) | " in report and "profiling overhead (charged" not in report


@pytest.mark.slow
def test_a_command_deaf_to_sigterm_at_a_chunks_end_is_killed_after_the_grace_period_and_relaunched(planned):
    """A 2-chunk plan (two clean 2-second stretches, simulated clock): the command gets SIGTERM when its run time
    reaches the first chunk's 2 s, ignores it, is killed 1 s later (command.grace_period), and is launched again at
    the second chunk, where it finishes. The pause is recorded, not slept."""
    submitted = parse_instant("2025-01-15T18:00:00Z")
    points = [(0, 400), (3 * 3600, 100), (3 * 3600 + 2, 400), (5 * 3600, 100), (5 * 3600 + 2, 400)]
    points += [(hours * 3600, 400) for hours in (9, 15, 21, 24)]
    Path("trace.csv").write_text(
        "timestamp,carbon_intensity\n" + "".join(f"{iso(submitted + t)},{v}\n" for t, v in points)
    )
    params = default_params()
    params["energy"]["measure_power_secs"] = 1
    params["command"]["grace_period"] = "1s"
    params["carbon"].update(sources=["csv"], csv={"path": "trace.csv"}, horizon="24h")
    params["scheduler"].update(mode="interruptible", expected_duration="4s")
    write_params(planned, params)
    assert carbon_pipe("wait-for-window").returncode == 0

    result = run("optimized", "deaf-once", "60")
    assert result.returncode == 0, result.stderr
    assert "did not exit within command.grace_period (1s) of SIGTERM and was killed" in result.stderr
    optimized = summary("optimized")
    first, second = optimized["command"]["launches"]
    assert first["stopped_for_pause"] and first["killed_after_grace"] and first["signal"] == "SIGKILL"
    assert 3 <= first["seconds"] < 5 and second["exit_code"] == 0
    chunks = optimized["scheduler_metrics"]["chunks"]
    assert [chunk["start"] for chunk in chunks] == [iso(submitted + 3 * 3600), iso(submitted + 5 * 3600)]
    assert optimized["scheduler_metrics"]["pauses"][0]["slept"] is False
    rows = intervals("optimized")
    assert rows[rows["segment"] == 1]["start_s"].min() == submitted + 5 * 3600  # the second launch, at its chunk


@pytest.mark.slow
def test_on_the_real_clock_the_command_sleeps_to_each_chunk_and_the_work_left_is_replanned(planned):
    """Clean seconds every 20 s on a real clock whose sleeps are instant: 2 s of planned work runs in 1-second
    chunks, the command stopped at each chunk's end and launched again after a re-planned, slept pause; the work
    beyond the plan (4 s in all) runs at once. Its own count of ticks carries it over to the end."""
    from carbon_pipe.config.params import load_params
    from carbon_pipe.pipeline import run_command, wait_for_window

    from ..training.test_pausing import OffsetClock

    clock = OffsetClock()
    first = int(clock.now()) + 3
    lines = [f"{first - 10},400"] + [f"{first + 20 * k},100\n{first + 20 * k + 1},400" for k in range(90)]
    Path("trace.csv").write_text("timestamp,carbon_intensity\n" + "\n".join(lines) + "\n")
    params = default_params()
    params["energy"]["measure_power_secs"] = 1
    params["carbon"].update(sources=["csv"], csv={"path": "trace.csv"}, horizon="1h")
    params["scheduler"].update(
        clock="real", mode="interruptible", expected_duration="2s", max_wait="20min", replan_interval="1h"
    )
    write_params(planned, params)
    config = load_params("params.yaml")
    wait_for_window.run_stage(config, say=lambda line: None, clock=clock)
    sleeps = len(clock.sleeps)
    argv = [sys.executable, "tool.py", "ticks", "4"]
    result = run_command.run_stage(config, "optimized", argv, clock=clock).to_json()
    metrics, launches = result["scheduler_metrics"], result["command"]["launches"]
    assert len(metrics["chunks"]) >= 2 and len(launches) == len(metrics["chunks"])
    assert all(launch["stopped_for_pause"] and launch["exit_code"] == 143 for launch in launches[:-1])
    assert launches[-1]["exit_code"] == 0 and result["command"]["extra"]["ticks"] == 16
    assert all(pause["slept"] for pause in metrics["pauses"]) and len(clock.sleeps) > sleeps
    *planned_chunks, last = metrics["chunks"]
    for chunk in planned_chunks[1:]:  # re-planned onto a clean second, started once it came
        assert "replans" in chunk and (parse_instant(chunk["planned_start"]) - first) % 20 < 1
        assert parse_instant(chunk["start"]) >= parse_instant(chunk["planned_start"])
    # Its 2 planned seconds are spent: carbon-pipe knows no more of the work left, so the rest runs at once.
    assert last["max_seconds"] is None and last["planned_start"] == last["planned_end"]
    assert metrics["chunk_mapping"] == "time-budgets"


@pytest.mark.slow
def test_what_the_command_leaves_running_is_killed_and_another_command_line_starts_afresh(planned):
    failed = carbon_pipe("run", "--run", "baseline", "--", "sh", "-c", "sleep 60 & echo $! > leftover.pid; exit 5")
    assert failed.returncode == 5
    assert not running(int(Path("leftover.pid").read_text()))  # its process group went with it
    assert Path("stages/train-baseline/resume/energy-node0.csv").is_file()

    other = run("baseline", "self", "0.5")  # another command line: not the failed run's to resume
    assert other.returncode == 0, other.stderr
    fresh = summary("baseline")
    assert fresh["training_metrics"]["discarded_stale_checkpoint"] is True
    assert fresh["training_metrics"]["segments"] == 1 and set(intervals("baseline")["segment"]) == {0}
