"""Pause-and-resume on carbon: the optimized run follows an interruptible plan's chunks, on both clocks.

The runs are tiny (synthetic 12x12 images, a narrow SimpleCNN, one epoch): a second or two each. Every chunked run
is checked against the same run trained in one go, byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import torch
import yaml

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import Interrupted, TrainingStopped
from carbon_pipe.pipeline import compare, train_optimized, wait_for_window
from carbon_pipe.timeutil import iso, parse_instant
from carbon_pipe.training import segments
from carbon_pipe.training.run_summary import ChunkNote
from carbon_pipe.training.segments import Segment

from ..conftest import run_training, synthetic_dataset, tiny_params, write_params

SUBMITTED = parse_instant("2025-01-15T18:00:00Z")
RUN = Path("stages/train-optimized")
RESUME = RUN / "resume"


def hours(h: float) -> float:
    return SUBMITTED + h * 3600


def two_dips_trace(path: Path) -> None:
    """5-min points from 18:00: 400 g/kWh, except an evening at 300 (19:00-20:00), a shoulder at 200 then a clean
    100 (21:00-21:10), and a second clean 100 at 23:00-23:05. A 10-min job: the flexible optimum is 21:00-21:10
    (mean 150); the interruptible one takes both clean stretches (mean 100)."""
    def value(t: float) -> float:
        if hours(1) <= t < hours(2):
            return 300
        if hours(3) <= t < hours(3) + 300:
            return 200
        if hours(3) + 300 <= t < hours(3) + 600 or hours(5) <= t < hours(5) + 300:
            return 100
        return 400

    times = [SUBMITTED + 300 * i for i in range(12 * 9)]
    path.write_text("timestamp,carbon_intensity\n" + "".join(f"{iso(t)},{value(t):g}\n" for t in times))


def demo_params(mode: str, **train) -> dict:
    return tiny_params(
        model={"kwargs": {"width": 4, "hidden": 16}},
        train={"checkpoint_every": 3, **train},
        carbon={"sources": ["csv"], "csv": {"path": "trace.csv"}, "horizon": "8h"},
        scheduler={"mode": mode, "max_wait": "6h", "expected_duration": "10min"},
        optimized={"batch_size": 8, "gradient_accumulation_steps": 2},
    )


def plan_and_train(raw: dict) -> dict:
    params = parse_params(raw)
    wait_for_window.run_stage(params, say=lambda line: None)
    return train_optimized.run_stage(params).to_json()


@pytest.fixture
def trace_project(workspace) -> Path:
    two_dips_trace(workspace / "trace.csv")
    synthetic_dataset(train=512, test=128, size=12)
    return workspace


def intervals() -> pd.DataFrame:
    rows = pd.read_csv(RUN / "energy_intervals.csv")
    rows["start_s"], rows["end_s"] = rows["start"].map(parse_instant), rows["end"].map(parse_instant)
    return rows


def test_step_targets_split_the_work_by_each_chunks_share_of_the_planned_time():
    assert segments.step_targets([300, 300], 64) == [32]
    assert segments.step_targets([600, 300, 300], 10) == [5, 8]  # round(7.5) = 8: the last chunk gets the rest
    assert segments.step_targets([1, 1000], 64) == [0]  # too short for a step of its own: skipped
    assert segments.step_targets([1200], 64) == []  # one chunk: it trains to the end


@pytest.mark.slow
def test_interruptible_run_shows_its_chunks_and_emits_less_than_flexible(trace_project):
    flexible = plan_and_train(demo_params("flexible"))
    flexible_model = (RUN / "model.pt").read_bytes()
    assert flexible["scheduler_metrics"]["start"] == iso(hours(3))  # the shoulder, then the clean stretch
    assert "chunks" not in flexible["scheduler_metrics"]

    chunked = plan_and_train(demo_params("interruptible"))
    decision = json.loads(Path("stages/wait-for-window/decision.json").read_text())
    assert [(c["start"], c["end"]) for c in decision["chunks"]] == [
        (iso(hours(3) + 300), iso(hours(3) + 600)), (iso(hours(5)), iso(hours(5) + 300))
    ]
    # The energy log shows each chunk at its clock time: the profile first, where the first chunk starts, then one
    # training segment per chunk, the first after the profile, the second where its chunk starts.
    rows = intervals()
    profiled = rows[rows["phase"] == "profile"]
    assert set(profiled["segment"]) == {0}
    assert profiled["start_s"].min() == parse_instant(decision["chunks"][0]["start"])
    starts = [profiled["end_s"].max(), parse_instant(decision["chunks"][1]["start"])]
    for segment, chunk, start in zip((1, 2), decision["chunks"], starts):
        mine = rows[rows["segment"] == segment]
        assert set(mine["phase"]) == {"training"} and mine["start_s"].min() == pytest.approx(start, abs=1e-5)
        assert mine["end_s"].max() < parse_instant(chunk["end"])  # seconds of work fit in a 5-min chunk
    assert (rows["intensity_g_per_kwh"] == 100).all()
    # Half the 32 steps (512 samples / 16) in each chunk; the pause recorded, not slept.
    metrics = chunked["scheduler_metrics"]
    assert [(c["first_step"], c["last_step"], c["until_step"]) for c in metrics["chunks"]] == [
        (0, 16, 16),
        (16, 32, None),
    ]
    [pause] = metrics["pauses"]
    assert pause["start"] == metrics["chunks"][0]["end"] and pause["end"] == iso(hours(5)) and not pause["slept"]
    # From the first chunk's real end (its start, then the profile's and the training's measured time) to the second's.
    assert pause["seconds"] == pytest.approx(hours(5) - parse_instant(metrics["chunks"][0]["end"]), abs=1e-3)
    assert 2 * 3600 - 600 < pause["seconds"] < 2 * 3600 - 300
    assert json.loads(Path("metrics/optimized.json").read_text())["scheduler_metrics"] == json.loads(
        json.dumps(metrics)
    )

    # The claim: lower emissions than the flexible plan on the same trace; and the same model, byte for byte.
    assert chunked["carbon_metrics"]["mean_intensity_g_per_kwh"] == pytest.approx(100)
    assert flexible["carbon_metrics"]["mean_intensity_g_per_kwh"] == pytest.approx(200)  # a short run: the shoulder
    assert chunked["carbon_metrics"]["total_emissions_kg"] < flexible["carbon_metrics"]["total_emissions_kg"]
    assert (RUN / "model.pt").read_bytes() == flexible_model
    assert not RESUME.exists()


@pytest.mark.slow
def test_compare_takes_the_pauses_out_of_the_counterfactual(trace_project):
    raw = demo_params("interruptible")
    plan_and_train(raw)
    run_training(parse_params(raw), "baseline")
    result = compare.run_stage().to_json()
    split = result["decomposition"]
    # Run in one go from 18:00 the profile meets only 400 g/kWh; keeping its two-hour pause would have put the
    # second chunk at 19:55, in the 300 g/kWh evening.
    rows = intervals()
    energy = rows.loc[rows["phase"] == "training", "energy_kwh"].sum()
    assert split["optimized_training_at_baseline_start_kg"] == pytest.approx(energy * 400 / 1000, rel=1e-12)
    assert split["schedule_effect_kg"] == pytest.approx(energy * (400 - 100) / 1000, rel=1e-9)
    baseline_energy = pd.read_csv("stages/train-baseline/energy_intervals.csv")["energy_kwh"].sum()  # all at 400
    assert split["configuration_effect_naive_kg"] == pytest.approx((baseline_energy - energy) * 400 / 1000, rel=1e-9)
    assert split["method"] == "baseline-start-shift+paired-profile"
    report = Path("stages/compare/report.md").read_text()
    assert "no pauses" in report  # what the schedule effect's method means, said in the report
    assert "2 chunks" in report


@pytest.mark.slow
def test_a_chunk_stopped_midway_resumes_after_where_it_stopped(trace_project):
    raw = demo_params("interruptible")
    params = parse_params(raw)
    wait_for_window.run_stage(params, say=lambda line: None)
    with pytest.raises(TrainingStopped):  # as a SIGTERM in the first chunk would: checkpoint at step 5, stop
        run_training(params, "optimized", Segment(until_step=5, note=ChunkNote(chunk=1)))
    with pytest.raises(TrainingStopped) as spent:  # a budget already spent trains and measures nothing
        run_training(params, "optimized", Segment(until_step=5))
    assert spent.value.step == 5 and spent.value.planned
    summary = train_optimized.run_stage(params).to_json()  # profiles first (segment 1), then trains on
    rows = intervals()
    assert rows.groupby("segment")["phase"].first().tolist() == ["training", "profile", "training", "training"]
    first_end = rows[rows["segment"] == 0]["end_s"].max()
    assert rows[rows["segment"] == 1]["start_s"].min() == pytest.approx(first_end, abs=1e-5)  # after, not over it
    assert rows[rows["segment"] == 2]["start_s"].min() == pytest.approx(rows[rows["segment"] == 1]["end_s"].max())
    chunks = summary["scheduler_metrics"]["chunks"]
    assert [(c["chunk"], c["first_step"], c["last_step"], c["segments"]) for c in chunks] == [
        (1, 0, 16, 2),
        (2, 16, 32, 1),
    ]
    model = (RUN / "model.pt").read_bytes()
    run_training(params, "optimized")  # the same run in one go
    assert (RUN / "model.pt").read_bytes() == model


@pytest.mark.slow
def test_two_gloo_processes_follow_the_chunks_in_one_process_group(trace_project):
    raw = demo_params("interruptible")
    write_params(trace_project, raw)
    wait_for_window.run_stage(parse_params(raw), say=lambda line: None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "carbon_pipe.cli", "--", "train", "--run", "optimized"],
        cwd=trace_project, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("chunk 1 of 2 done") == 1  # rank 0 reports
    summary = json.loads(Path("metrics/optimized.json").read_text())
    assert summary["world_size"] == 2
    chunks = summary["scheduler_metrics"]["chunks"]
    assert [(c["start"], c["first_step"], c["last_step"]) for c in chunks] == [
        (iso(hours(3) + 300), 0, 16), (iso(hours(5)), 16, 32)
    ]


@dataclass
class OffsetClock:
    """The wall clock, except that sleeping is instant: it moves the hands and is recorded."""

    offset: float = 0.0
    sleeps: list = field(default_factory=list)
    interrupt_when: Callable[[], bool] = lambda: False
    simulated = False

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        if self.interrupt_when():
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.offset += seconds


SLOW_MODEL = '''
import time

from carbon_pipe.training.model import SimpleCNN


class SlowCNN(SimpleCNN):
    """A forward pass takes at least `delay` seconds: a training time the tests can count on, on any machine."""

    def __init__(self, num_classes=10, in_channels=1, image_size=28, width=4, hidden=16, delay=0.2):
        super().__init__(num_classes, in_channels, image_size, width, hidden)
        self.delay = delay

    def forward(self, images):
        time.sleep(self.delay)
        return super().forward(images)
'''


def real_clock_project(
    folder: Path, clock: OffsetClock, period: int = 30, mode: str = "interruptible", profile: bool = False
) -> dict:
    """A trace from just after now: 400 g/kWh, except half a second at 100 every `period` s from `first`. The job
    (4 steps of at least 0.2 s) is planned at 1 s, so its first chunk, half a second, cannot hold all of it. Unless
    `profile`, the run does not profile first: its profile (seconds) would outlast the first half-second chunk."""
    first = math.ceil(clock.now()) + 3
    lines = [f"{first - 10},400"]
    for k in range(1800 // period):
        lines += [f"{first + k * period},100", f"{first + k * period + 0.5},400"]
    (folder / "trace.csv").write_text("timestamp,carbon_intensity\n" + "\n".join(lines) + "\n")
    (folder / "slow_model.py").write_text(SLOW_MODEL)
    synthetic_dataset(train=64, test=32, size=12)
    raw = demo_params(mode)
    raw["model"] = {"class": "slow_model:SlowCNN", "kwargs": {}}
    raw["scheduler"].update(clock="real", expected_duration="1s", max_wait="10min", replan_interval="1h")
    raw["carbon"].update(horizon="20min")
    raw["optimized"].update(batch_size=16, gradient_accumulation_steps=1)  # 4 steps
    raw["profile"].update(before_training=profile)
    write_params(folder, raw)
    wait_for_window.run_stage(
        parse_params(raw), say=lambda line: None, clock=clock
    )  # sleeps to the first clean stretch
    return {"raw": raw, "first": first, "period": period}


def in_clean_stretch(instant: str, project: dict) -> bool:
    """Whether a planned start lies in one of the trace's clean half-seconds (the last re-plan starts it at now)."""
    return (parse_instant(instant) - project["first"]) % project["period"] < 0.5


def assert_same_as_one_go(params) -> None:
    model = (RUN / "model.pt").read_bytes()
    run_training(params, "optimized")
    assert (RUN / "model.pt").read_bytes() == model


@pytest.mark.slow
def test_real_clock_sleeps_to_each_chunk_and_replans_the_work_left(workspace):
    clock = OffsetClock()
    project = real_clock_project(workspace, clock)
    params = parse_params(project["raw"])
    waited_for_window = len(clock.sleeps)
    summary = train_optimized.run_stage(params, clock=clock).to_json()
    metrics = summary["scheduler_metrics"]
    chunks, pauses = metrics["chunks"], metrics["pauses"]
    assert len(chunks) >= 2 and len(pauses) == len(chunks) - 1
    assert all(chunk["max_seconds"] <= 0.5 for chunk in chunks[:-1])
    # The last chunk trains to the end: with no budget, or within the budget of a chunk that had more planned after it.
    assert chunks[-1]["max_seconds"] is None or chunks[-1]["max_seconds"] <= 0.5
    for chunk in chunks[1:]:  # re-planned from a fresh fetch, onto a clean stretch, after a sleep
        assert in_clean_stretch(chunk["planned_start"], project) and "replans" in chunk
        assert parse_instant(chunk["start"]) >= parse_instant(chunk["planned_start"])
    assert all(pause["slept"] and pause["seconds"] > 20 for pause in pauses)
    assert sum(clock.sleeps[waited_for_window:]) == pytest.approx(sum(pause["seconds"] for pause in pauses), abs=10)
    assert chunks[-1]["last_step"] == 4 and sum(chunk["steps"] for chunk in chunks) == 4
    # Each chunk's energy sits on the clock where the chunk ran: one training segment each, starting at the chunk's
    # start; between them the meter ran on through each pause (the hardware is held), a segment of phase idle.
    rows = intervals()
    phases = rows.groupby("segment")["phase"].first()
    training = phases[phases == "training"].index.tolist()
    assert len(training) == len(chunks) and phases.tolist().count("idle") >= len(pauses)
    for segment, chunk in zip(training, chunks):
        assert rows[rows["segment"] == segment]["start_s"].min() == pytest.approx(
            parse_instant(chunk["start"]), abs=1e-3
        )
    assert_same_as_one_go(params)


@pytest.mark.slow
def test_a_flexible_window_that_passed_while_the_baseline_trained_is_planned_again(workspace):
    clock = OffsetClock()
    project = real_clock_project(workspace, clock, mode="flexible")
    planned = json.loads(Path("stages/wait-for-window/decision.json").read_text())["start"]
    clock.offset += 5  # DVC trained the baseline in between: the planned clean half-second is long gone
    sleeps_before = len(clock.sleeps)
    summary = train_optimized.run_stage(parse_params(project["raw"]), clock=clock).to_json()
    [chunk] = summary["scheduler_metrics"]["chunks"]
    assert parse_instant(chunk["planned_start"]) > parse_instant(planned) + 5  # a new window, not the stale one
    # A 1 s job at its best takes in a whole clean half-second (starting in it or half a second before it).
    offset = (parse_instant(chunk["planned_start"]) - project["first"]) % project["period"]
    assert (offset < 0.5 or offset >= project["period"] - 0.5) and len(clock.sleeps) > sleeps_before
    assert parse_instant(chunk["start"]) >= parse_instant(chunk["planned_start"])
    assert summary["scheduler_metrics"]["placement"] == "actual start after waiting (real clock)"


@pytest.mark.slow
def test_ctrl_c_during_a_pause_records_it_and_a_rerun_resumes(workspace):
    clock = OffsetClock(interrupt_when=lambda: (RESUME / "checkpoint.pt").exists())  # the first pause after a chunk
    project = real_clock_project(workspace, clock)
    params = parse_params(project["raw"])
    with pytest.raises(TrainingStopped) as stopped:
        train_optimized.run_stage(params, clock=clock)
    assert stopped.value.exit_code == 130 and "stopped by SIGINT while paused" in str(stopped.value)
    step = torch.load(RESUME / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step == stopped.value.step < 4
    [interruption] = json.loads((RESUME / segments.INTERRUPTIONS).read_text())
    assert interruption["signal"] == "SIGINT" and interruption["after_step"] == step
    assert in_clean_stretch(interruption["planned_start"], project)

    clock.interrupt_when = lambda: False
    summary = train_optimized.run_stage(params, clock=clock).to_json()
    chunks = summary["scheduler_metrics"]["chunks"]
    assert chunks[-1]["first_step"] == step and chunks[-1]["interruptions"] == [interruption]
    assert_same_as_one_go(params)


@pytest.mark.slow
def test_a_failed_refetch_between_chunks_keeps_the_plan_and_is_recorded(workspace):
    clock = OffsetClock()
    project = real_clock_project(workspace, clock)
    params = parse_params(project["raw"])
    decision = json.loads(Path("stages/wait-for-window/decision.json").read_text())

    def say(line: str) -> None:  # the trace disappears once the first chunk is done
        if "pausing" in line:
            (workspace / "trace.csv").unlink(missing_ok=True)

    summary = train_optimized.run_stage(params, say=say, clock=clock).to_json()
    chunks = summary["scheduler_metrics"]["chunks"]
    assert chunks[1]["planned_start"] == decision["chunks"][1]["start"]  # the rest of the plan made before
    assert (
        "kept the plan made before" in chunks[1]["replan_failures"][0]
        and "trace.csv" in chunks[1]["replan_failures"][0]
    )
    assert_same_as_one_go(params)


@pytest.mark.slow
def test_sigterm_during_a_real_pause_stops_the_command_with_the_checkpoint_in_place(workspace):
    clock = OffsetClock()
    project = real_clock_project(workspace, clock)
    # The command runs on the wall clock, behind the offset clock: it re-plans, sleeps to a clean second, trains.
    process = subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "optimized"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    seen = []
    # After the first chunk, the pause's own line: the next clean half-second is ~30 s away, so the signal lands in
    # the pause however loaded the machine (before the pause it is recorded too: test_a_signal_between_chunks...).
    while not (any("pausing" in line for line in seen) and "next look in" in seen[-1]):
        line = process.stderr.readline()
        assert line, f"train ended before pausing: {''.join(seen)}"
        seen.append(line)
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, rest
    assert "stopped by SIGTERM while paused" in rest.strip().splitlines()[-1] and "Traceback" not in rest
    step = torch.load(RESUME / "checkpoint.pt", weights_only=True)["step"]
    [interruption] = json.loads((RESUME / segments.INTERRUPTIONS).read_text())
    assert interruption["signal"] == "SIGTERM" and interruption["after_step"] == step > 0

    summary = train_optimized.run_stage(parse_params(project["raw"]), clock=clock).to_json()
    assert summary["scheduler_metrics"]["chunks"][0]["first_step"] == 0
    assert_same_as_one_go(parse_params(project["raw"]))


@pytest.mark.slow
def test_after_a_resumed_wait_the_run_keeps_the_first_submissions_deadline(workspace):
    """Wait-for-window is stopped, then rerun 530 s after submission (max_wait 10 min). The optimized run's deadline
    is the first submission + max_wait + the job: with the first chunk done past it, the rest runs at once
    instead of pausing for the next clean half-second (a deadline from the rerun would leave it 530 s more)."""
    clock = OffsetClock(interrupt_when=lambda: True)  # the first sleep of the wait is a Ctrl-C
    with pytest.raises(Interrupted):
        real_clock_project(workspace, clock)
    raw = yaml.safe_load((workspace / "params.yaml").read_text())
    submitted = parse_instant(json.loads(Path("stages/wait-for-window/decision.json").read_text())["horizon"]["now"])
    clock.interrupt_when, clock.offset = (lambda: False), clock.offset + 530
    decision = wait_for_window.run_stage(parse_params(raw), say=lambda line: None, clock=clock).to_json()
    assert parse_instant(decision["horizon"]["now"]) == submitted
    assert len(decision["chunks"]) == 2  # two clean half-seconds

    def say(line: str) -> None:
        if "pausing" in line:  # the first chunk is done: time flies past the first deadline
            clock.offset = submitted + 605 - time.time()

    summary = train_optimized.run_stage(parse_params(raw), say=say, clock=clock).to_json()
    chunks = summary["scheduler_metrics"]["chunks"]
    assert len(chunks) == 2 and chunks[1]["past_deadline"] is True
    assert_same_as_one_go(parse_params(raw))


GAP_DRIVER = """
import os, signal, sys
from carbon_pipe.errors import TrainingStopped
from carbon_pipe.config.params import load_params
from carbon_pipe.pipeline import train_optimized

def say(line):
    if "pausing" in line:  # the first chunk has ended and its training scope closed; the pause has not begun
        os.kill(os.getpid(), signal.SIGTERM)

try:
    train_optimized.run_stage(load_params("params.yaml"), say=say)
except TrainingStopped as stopped:
    print(stopped, file=sys.stderr)
    sys.exit(stopped.exit_code)
"""


@pytest.mark.slow
def test_a_signal_between_chunks_stops_the_run_as_one_during_the_pause_does(workspace):
    """Between a chunk's end and the pause (and while the next chunk is set up) no handler
    was installed, so a SIGTERM there killed the process unrecorded. Sent from inside that gap, deterministically."""
    real_clock_project(workspace, OffsetClock())
    result = subprocess.run(
        [sys.executable, "-c", GAP_DRIVER], cwd=workspace, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "stopped by SIGTERM while paused" in result.stderr.strip().splitlines()[-1]
    step = torch.load(RESUME / "checkpoint.pt", weights_only=True)["step"]
    [interruption] = json.loads((RESUME / segments.INTERRUPTIONS).read_text())
    assert interruption["signal"] == "SIGTERM" and interruption["after_step"] == step > 0


def test_nested_stop_scopes_share_what_came_between_them():
    """The train stage holds one scope for the whole job: a signal between two inner scopes is the next one's."""
    from carbon_pipe.signals import stop_requests

    with stop_requests() as outer:
        with stop_requests() as first:
            assert first == []
        os.kill(os.getpid(), signal.SIGTERM)  # between the two: the outer scope's handler records it
        with stop_requests() as second:
            assert second == [signal.SIGTERM] and second is outer
    with stop_requests() as later:  # a scope opened afresh starts empty
        assert later == []


@dataclass
class HeldClock(OffsetClock):
    """The wall clock, where a sleep really passes (up to `held` seconds) and the rest is skipped: each pause
    holds the process for a measurable time."""

    held: float = 0.6

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.held))
        super().sleep(max(0.0, seconds - self.held))


@pytest.mark.slow
def test_on_the_real_clock_the_run_profiles_first_and_is_metered_through_its_pauses(workspace):
    clock = HeldClock()
    project = real_clock_project(workspace, clock, profile=True)
    params = parse_params(project["raw"])
    summary = train_optimized.run_stage(params, clock=clock).to_json()
    rows = intervals()
    phases = rows.groupby("segment")["phase"].first()
    assert phases.iloc[0] == "profile" and summary["profile"]["segments"] == [0]
    assert summary["scheduler_metrics"]["start"] == summary["profile"]["clock_start"]  # the run began with it
    idle = rows[rows["phase"] == "idle"]
    pauses = summary["scheduler_metrics"]["pauses"]
    assert pauses and idle["segment"].nunique() >= len(pauses) and idle["energy_kwh"].sum() > 0
    sci = summary["sci"]
    assert sci["held_idle_energy_kwh"] == pytest.approx(idle["energy_kwh"].sum(), rel=1e-12)
    assert sci["energy_kwh"] == pytest.approx(rows["energy_kwh"].sum(), rel=1e-12) and sci["held_idle"] == "measured"
    assert summary["carbon_metrics"]["total_emissions_kg"] == pytest.approx(rows["emissions_kg"].sum(), rel=1e-12)
    assert_same_as_one_go(params)
