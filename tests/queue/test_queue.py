"""The experiment queue without running experiments: entries from -S grids, the queue file, the plan (table and
PNG), bad input (one line naming the entry, nothing added or started), the slot an experiment is started in, and
the launch wrapper that never runs an entry twice."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from carbon_pipe.cli import app
from carbon_pipe.queue.local import WRAPPER, settle
from carbon_pipe.queue.store import QUEUE_FILE, read_queue

from ..conftest import default_params

ARRIVAL = "2025-01-15T18:00:00Z"
# Hourly, three days: dirty evenings, a trough at 03:00 each night.
TRACE = "timestamp,carbon_intensity\n" + "".join(
    f"2025-01-{15 + h // 24:02d}T{h % 24:02d}:00:00Z,{100 + 40 * abs(h % 24 - 3)}\n"
    for h in range(72)
)


def project_in(workspace: Path) -> Path:
    (workspace / "trace.csv").write_text(TRACE)
    raw = default_params()
    raw["carbon"]["sources"] = ["csv"]
    raw["carbon"]["csv"]["path"] = str(workspace / "trace.csv")
    (workspace / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return workspace


@pytest.fixture
def project(workspace):
    return project_in(workspace)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def add(*args: str):
    return cli("queue", "add", "--arrival", ARRIVAL, *args)


def test_a_comma_list_grid_queues_one_entry_per_combination(project):
    result = add("-S", "train.learning_rate=0.001,0.01", "-S", "train.epochs=1,2", "--name", "lr",
                 "--duration", "1h", "--slack", "24h")
    assert result.exit_code == 0, result.output
    entries = read_queue().entries
    assert [entry.name for entry in entries] == ["lr-1", "lr-2", "lr-3", "lr-4"]
    assert [entry.overrides for entry in entries][1] == {"train.learning_rate": "0.001", "train.epochs": "2"}
    assert all(entry.deadline - entry.arrival == 24 * 3600 and entry.duration == 3600 for entry in entries)


def test_auto_duration_falls_back_and_power_defaults_when_nothing_was_measured(project):
    assert add("-S", "train.epochs=2").exit_code == 0
    (entry,) = read_queue().entries
    assert entry.duration == 600 and "fallback_duration" in entry.duration_basis
    assert entry.power_kw == 0.2 and "default" in entry.power_basis
    # A list value is one YAML value, not a sweep.
    assert add("-S", "carbon.sources=[csv,mock]").exit_code == 0
    assert read_queue().entries[-1].overrides == {"carbon.sources": "[csv,mock]"}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["-S", "train.learnin_rate=0.1", "--name", "bad"], "entry bad: -S train.learnin_rate: unknown key"),
        (["-S", "train.epochs=two", "--name", "word"], "entry word: train.epochs"),
        (["--deadline", "2025-01-15T17:00:00Z", "--name", "early"], "entry early: --deadline: it is before"),
        (["--duration", "3h", "--slack", "2h", "--name", "long"], "entry long: its expected duration 10800 s is "
                                                                  "longer than the slack 7200 s"),
        ([arg for key in ("train.epochs", "seed", "train.learning_rate", "baseline.batch_size", "data.train_limit")
          for arg in ("-S", f"{key}={','.join(str(n) for n in range(1, 11))}")], "-S: a grid of 100,000 entries"),
    ],
)
def test_a_bad_entry_is_one_line_naming_it_and_adds_nothing(project, args, expected):
    assert add("--name", "kept", "--duration", "1h").exit_code == 0
    before = QUEUE_FILE.read_bytes()
    result = add(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert QUEUE_FILE.read_bytes() == before


def test_zero_workers_is_refused_before_anything_runs(project):
    add("--duration", "1h")
    for command in (["plan", "--now", ARRIVAL], ["run"], ["submit", "--slurm"]):
        result = cli("queue", *command, "--workers", "0")
        assert result.exit_code == 2 and "--workers: at least one worker" in result.output, result.output
    assert read_queue().entries[0].state == "queued" and not (QUEUE_FILE.parent / "plan.png").exists()


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda raw: raw["entries"][1].update(deadline="soon"), "entry 2 (b): deadline"),
        (lambda raw: raw["entries"][0].update(state="halfway"), "entry 1 (a): state"),
        (lambda raw: raw["entries"][1].update(duration=-5), "entry 2 (b): duration"),
        (lambda raw: raw["entries"][1].update(name="a"), "entry a: named twice"),
        (lambda raw: raw.update(entries="all of them"), "the file: entries"),
        (lambda raw: raw.update(version=1, entries=[{**{k: v for k, v in entry.items() if k != "slurm_jobs"},
                                                     "slurm_job": None} for entry in raw["entries"]]),
         "written by an earlier carbon-pipe (queue file version 1"),
    ],
)
def test_a_queue_file_edited_into_nonsense_is_one_line_and_runs_nothing(project, two_entries, edit, expected):
    raw = json.loads(two_entries)
    edit(raw)
    QUEUE_FILE.parent.mkdir(parents=True)
    QUEUE_FILE.write_text(json.dumps(raw))
    edited = QUEUE_FILE.read_bytes()
    for command in (["run", "--workers", "1"], ["plan", "--now", ARRIVAL], ["status"]):
        result = cli("queue", *command)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], result.output
    assert QUEUE_FILE.read_bytes() == edited and not (QUEUE_FILE.parent / "entries").exists()


@pytest.fixture(scope="module")
def two_entries(tmp_path_factory) -> str:
    """The queue file as `queue add` wrote it for two entries, a and b (made once: each test edits its own copy)."""
    folder = tmp_path_factory.mktemp("two-entries")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        project_in(folder)
        add("--name", "a", "--duration", "1h")
        add("--name", "b", "--duration", "1h")
        return QUEUE_FILE.read_text()


def test_a_queue_file_that_is_not_json_or_not_a_file_is_one_line(project):
    QUEUE_FILE.parent.mkdir(parents=True)
    QUEUE_FILE.write_text("{not json")
    result = cli("queue", "run")
    assert result.exit_code == 2 and "queue.json is not valid JSON" in result.output
    QUEUE_FILE.unlink()
    os.mkfifo(QUEUE_FILE)  # would block the reader forever
    result = cli("queue", "status")
    assert result.exit_code == 2 and "queue.json is not a file (a FIFO)" in result.output, result.output


def test_plan_prints_the_table_and_draws_the_gantt_beside_first_come(project):
    add("-S", "train.epochs=1,2,3", "--name", "e", "--duration", "2h", "--slack", "20h")
    result = cli("queue", "plan", "--workers", "1", "--now", ARRIVAL, "--json", "--png", "plan.png")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    starts = sorted(row["start"] for row in summary["entries"])
    # One worker: the three runs follow each other around the night's trough, none overlapping.
    ends = sorted(row["end"] for row in summary["entries"])
    assert all(end <= start for end, start in zip(ends, starts[1:]))
    assert summary["total_g"] < summary["first_come_total_g"] and summary["gap"] == 0
    assert all(row["saving_vs_now_pct"] > 0 for row in summary["entries"])
    assert (project / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = cli("queue", "plan", "--workers", "1", "--now", ARRIVAL).output
    assert "e-1" in text and "first-come" in text and "vs own best" in text


def test_with_a_worker_each_the_queue_plan_is_each_entrys_own_best_window(project):
    add("-S", "train.epochs=1,2,3", "--name", "e", "--duration", "2h", "--slack", "20h")
    summary = json.loads(cli("queue", "plan", "--workers", "3", "--now", ARRIVAL, "--json").output)
    assert all(abs(row["vs_own_best_pct"]) < 1e-9 for row in summary["entries"])


def test_an_experiment_started_in_its_slot_records_the_queue_plan_and_does_not_wait(project, monkeypatch):
    """The slot reaches wait-for-window through the environment: the decision starts now (no wait of its own),
    counts from the entry's arrival and names the queue's plan; without it, wait-for-window plans as before."""
    from carbon_pipe.config.params import load_params, with_overrides
    from carbon_pipe.pipeline import wait_for_window
    from carbon_pipe.scheduling.queued import QueueSlot
    from carbon_pipe.timeutil import iso

    now = time.time()
    hour = 3600
    trace = "timestamp,carbon_intensity\n" + "".join(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now - 2 * hour + k * 600))},{400 - 20 * (k % 12)}\n"
        for k in range(100)
    )
    (project / "trace.csv").write_text(trace)
    slot = QueueSlot("lr-1", now - hour, now - 5, now + 600, 1.5, 2, "milp", now - 60)
    for key, value in slot.environment().items():
        monkeypatch.setenv(key, value)
    decision = wait_for_window.run_stage(load_params("params.yaml"))
    assert decision.submitted == pytest.approx(now - hour) and decision.start == pytest.approx(time.time(), abs=5)
    assert decision.rule == "queue" and "carbon-pipe queue" in decision.reason and "lr-1" in decision.reason
    assert decision.expected_duration == pytest.approx(605)
    recorded = json.loads((project / "stages/wait-for-window/decision.json").read_text())
    assert recorded["wait_seconds"] == pytest.approx(hour, abs=5) and recorded["duration_source"] == "queue"
    monkeypatch.delenv("CARBON_PIPE_QUEUE_SLOT")
    alone = wait_for_window.run_stage(with_overrides(load_params("params.yaml"), now=iso(now)))
    assert alone.rule == "lowest-mean" and alone.submitted == pytest.approx(now, abs=1e-3)


def test_the_launch_wrapper_runs_an_entry_once_however_often_it_is_launched(tmp_path):
    folder = tmp_path / "entry"
    folder.mkdir()
    counter = tmp_path / "ran"
    command = ["sh", "-c", f"echo once >> {counter}; sleep 0.5"]
    launches = [subprocess.Popen(["sh", "-c", WRAPPER, "q", str(folder), *command]) for _ in range(3)]
    codes = sorted(launch.wait() for launch in launches)
    assert counter.read_text() == "once\n"
    assert codes == [0, 75, 75] and (folder / "exit").read_text().strip() == "0"
    assert int((folder / "began").read_text()) > 0


def test_a_restarted_runner_settles_what_its_predecessor_started(project):
    """What a killed `run` left: an exit status (done or failed), a live process (still running), a dead one
    without a status (failed, not run again), and a launch that never began (queued again)."""
    from carbon_pipe.queue.store import Entry

    def entry(name: str) -> Entry:
        made = Entry(name=name, overrides={}, arrival=0, deadline=7200, duration=60, duration_basis="",
                     power_kw=0.1, power_basis="", state="started", started_at=time.time() - 100)
        made.folder.mkdir(parents=True)
        return made

    done, failed, alive, dead, never = (entry(name) for name in ("done", "failed", "alive", "dead", "never"))
    (done.folder / "exit").write_text("0\n")
    (failed.folder / "exit").write_text("3\n")
    sleeper = subprocess.Popen(["sleep", "30"])
    (alive.folder / "began").write_text(f"{sleeper.pid}\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    (dead.folder / "began").write_text(f"{gone.pid}\n")
    now = time.time()
    try:
        assert settle(done, now, set())["state"] == "done"
        assert settle(failed, now, set())["exit_code"] == 3
        assert settle(alive, now, set()) is None
        assert settle(dead, now, set())["state"] == "failed"
        assert settle(never, now, set())["state"] == "queued"
        assert settle(never, now, {"never"}) is None  # this runner's own launch, still starting
    finally:
        os.kill(sleeper.pid, 9)
        sleeper.wait()


def test_cancel_takes_queued_entries_out_and_refuses_finished_ones(project):
    add("-S", "train.epochs=1,2", "--name", "c", "--duration", "1h")
    assert cli("queue", "cancel", "c-2").exit_code == 0
    assert [entry.state for entry in read_queue().entries] == ["queued", "cancelled"]
    result = cli("queue", "cancel", "c-2")
    assert result.exit_code == 2 and "entry c-2: cancelled, not waiting to start" in result.output
    result = cli("queue", "cancel", "nope")
    assert result.exit_code == 2 and "entry nope: not in the queue" in result.output


def test_a_slot_already_past_is_clamped_to_now_and_said(project):
    """SLURM drops a --begin in the past: the job begins now instead, and the user is told which entry moved."""
    from carbon_pipe.queue.slurm import _begin
    from carbon_pipe.queue.store import Entry, Slot

    said = []
    entry = Entry(name="late", overrides={}, arrival=0, deadline=9000, duration=60, duration_basis="", power_kw=0.1,
                  power_basis="", slot=Slot(start=1000, end=1060, expected_g=1, planned_at=900, method="milp"))
    assert _begin(entry, 1000.0, 1005.0, said.append) == 1005.0 and "late: its slot" in said[0]
    assert "begins now" in said[0]
    assert _begin(entry, 1000.0, 990.0, said.append) == 1000.0 and len(said) == 1


def test_sigterm_stops_following_the_queue_in_one_line_and_loses_nothing(project):
    """`queue run` waiting for a slot hours away: SIGTERM ends it with 143 and one line; the entry stays queued with
    its slot, and nothing was launched."""
    import signal
    import sys

    from .queue_project import trace

    now = time.time()
    (project / "trace.csv").write_text(trace(now, 600, [300 - 5 * k for k in range(40)]))  # cleanest at the end
    assert cli("queue", "add", "--name", "later", "--duration", "1h", "--slack", "5h").exit_code == 0
    run = subprocess.Popen([sys.executable, "-m", "carbon_pipe.cli", "queue", "run", "--workers", "1"],
                           stderr=subprocess.PIPE, text=True)
    assert "queue: planned 1 entry" in run.stderr.readline()
    run.send_signal(signal.SIGTERM)
    _, rest = run.communicate(timeout=30)
    assert run.returncode == 143 and rest.count("\n") == 1 and "stopped by SIGTERM" in rest, rest
    (entry,) = read_queue().entries
    assert entry.state == "queued" and entry.slot is not None and entry.slot.start > now + 3600
    assert not entry.folder.exists()


def test_an_entry_whose_latest_start_passed_is_recorded_as_missed_and_the_rest_go_on(project):
    from carbon_pipe.config.params import load_params
    from carbon_pipe.queue.local import Runner
    from carbon_pipe.scheduling.clock import SimulatedClock

    from .queue_project import trace

    now = time.time()
    (project / "trace.csv").write_text(trace(now, 600, [300 - 5 * k for k in range(40)]))
    cli("queue", "add", "--name", "gone", "--duration", "1h", "--arrival", time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * 3600)), "--slack", "90min")
    cli("queue", "add", "--name", "kept", "--duration", "1h", "--slack", "5h")
    said = []
    assert Runner(load_params("params.yaml"), 1, said.append, SimulatedClock(now), 60.0, None).step(first=True)
    gone, kept = read_queue().entries
    assert gone.state == "failed" and gone.note.startswith("missed: its latest start") and "gone missed" in said[0]
    assert kept.state == "queued" and kept.slot is not None


def test_lanes_give_each_worker_one_entry_at_a_time_and_keep_running_jobs():
    """The lanes SLURM is told (one chain of jobs per worker): never more than K, never two overlapping entries in
    one lane, and a running job keeps its lane."""
    from carbon_pipe.queue.planning import lanes
    from carbon_pipe.scheduling.joint import JobSlot, JointPlan
    from carbon_pipe.scheduling.planner import Chunk

    def plan(*spans):
        slots = tuple(JobSlot(name, (Chunk(start, end, 100.0),), 1.0) for name, start, end in spans)
        return JointPlan(slots, "milp", 1.0, 1.0, 1.0)

    spans = [("a", 0, 10), ("b", 0, 20), ("c", 10, 30), ("d", 20, 25), ("e", 25, 40)]
    lane_of = lanes(plan(*spans), 2)
    assert set(lane_of.values()) <= {0, 1}
    for (x, s1, e1), (y, s2, e2) in itertools.combinations(spans, 2):
        if s1 < e2 and s2 < e1:
            assert lane_of[x] != lane_of[y], (x, y)
    assert lanes(plan(*spans), 2, fixed={"b": 0})["b"] == 0
    assert lanes(plan(("x", 0, 10), ("y", 0, 10), ("z", 0, 10)), 2)["z"] in (0, 1)  # over-full: still K lanes
