"""Interruptible queue entries: planned by the joint plan in chunks (none shorter than the entry's
scheduler.min_chunk, never more than K running), shown in the plan's table; once started, one holds a worker in its
chunks only, the pauses between them are planned for others, and its experiment follows those chunks without
re-planning; under SLURM its run hands the worker back at a chunk's end instead, for the next chunk's job to resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.queue.planning import chunk_phase, plan_queue, worth_moving
from carbon_pipe.queue.store import Entry, Slot, read_queue
from carbon_pipe.timeutil import parse_instant

from .test_queue import ARRIVAL, add, cli, project  # noqa: F401  (project: the fixture)

HOUR = 3600.0


def spans(row) -> list[tuple[float, float]]:
    return [(parse_instant(start), parse_instant(end)) for start, end in row["chunks"]]


def most_running(rows) -> int:
    events = sorted((t, d) for row in rows for s, e in spans(row) for t, d in ((s, 1), (e, -1)))
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    return most


@pytest.mark.usefixtures("project")
def test_an_interruptible_entry_is_planned_in_chunks_at_least_its_floor_beside_whole_ones():
    add("-S", "train.epochs=1,2", "--name", "w", "--duration", "2h", "--slack", "20h")
    assert add("-S", "scheduler.min_chunk=1h", "--name", "s", "--duration", "5h", "--slack", "20h",
               "--interruptible").exit_code == 0  # fmt: skip
    assert read_queue().named("s").chunk_floor == HOUR and read_queue().named("w-1").chunk_floor is None
    summary = json.loads(cli("queue", "plan", "--workers", "1", "--now", ARRIVAL, "--json").output)
    rows = {row["entry"]: row for row in summary["entries"]}
    assert most_running(summary["entries"]) == 1
    chunked = spans(rows["s"])
    assert len(chunked) > 1  # the whole entries take the trough's middle: s runs around them
    assert min(end - start for start, end in chunked) >= HOUR and sum(e - s for s, e in chunked) == 5 * HOUR
    assert all(len(rows[name]["chunks"]) == 1 for name in ("w-1", "w-2"))
    text = cli("queue", "plan", "--workers", "1", "--now", ARRIVAL).output
    assert "chunks" in text.splitlines()[0]
    # With a worker each nothing competes: every entry, chunked or whole, gets its own best plan.
    alone = json.loads(cli("queue", "plan", "--workers", "3", "--now", ARRIVAL, "--json").output)
    assert all(abs(row["vs_own_best_pct"]) < 1e-9 for row in alone["entries"])


T0 = 1_736_900_000.0  # 2025-01-15T00:13:20Z: the series below starts there, on its own hourly grid


def entry(name: str, duration: float, chunks=(), started_at=None, floor=None) -> Entry:
    slot = None
    if chunks:
        slot = Slot(start=chunks[0][0], end=chunks[-1][1], expected_g=1.0, planned_at=T0, method="milp",
                    chunks=list(chunks) if floor is not None else [])
    return Entry(name=name, overrides={}, arrival=T0, deadline=T0 + 20 * HOUR, duration=duration,
                 duration_basis="given", power_kw=0.1, power_basis="given", chunk_floor=floor,
                 state="started" if started_at else "queued", slot=slot, started_at=started_at)


SPLIT = entry("split", 2 * HOUR, [(T0, T0 + HOUR), (T0 + 3 * HOUR, T0 + 4 * HOUR)], started_at=T0, floor=HOUR)


@pytest.mark.usefixtures("project")
def test_a_pausing_entry_frees_its_worker_and_takes_it_back_before_anything_new_or_is_held_for_one():
    """The runner counts a started entry's worker free only while its run's pause marker is there. One due to
    resume takes its worker back first; with none free it is held (a renewed lease) until one frees, then let go."""
    from carbon_pipe.config.params import load_params
    from carbon_pipe.queue.local import HOLD_AHEAD, Runner
    from carbon_pipe.scheduling.clock import SimulatedClock
    from carbon_pipe.scheduling.queued import Pause, PauseMarker

    now = T0 + 2 * HOUR  # in SPLIT's pause
    whole = entry("whole", HOUR, [(now - 60, now + HOUR)], started_at=now - 60)
    said, clock = [], SimulatedClock(now)

    def taken(workers: int, running=(SPLIT, whole)) -> int:
        runner = Runner(load_params("params.yaml"), workers, said.append, clock, 60.0, None)
        return runner.workers_taken(list(running))

    marker = PauseMarker(SPLIT.pause_file)
    assert taken(1) == 2  # no marker: still running (earlier stages, or a chunk's grace period), whatever the plan
    marker.pause(now + HOUR)
    assert taken(1) == 1 and marker.read() == Pause(now + HOUR)  # pausing, not due for a long while: no hold
    marker.pause(now + 1)  # due to resume within the lead
    assert taken(2) == 2 and marker.read() == Pause(now + 1)  # a worker free: it takes it back, on time
    assert taken(1) == 1 and marker.read() == Pause(now + 1, now + HOLD_AHEAD)  # none free: held
    clock.current += 30
    assert taken(1) == 1 and marker.read().held_until == clock.current + HOLD_AHEAD  # still none: the lease renewed
    assert said == ["queue: split held: its next chunk waits for a worker (1 taken)"]
    assert taken(1, running=[SPLIT]) == 1 and marker.read() == Pause(now + 1)  # `whole` ended: let go, counted
    assert said[-1] == "queue: split let go: a worker is free for its next chunk"
    assert whole.pause() is None  # a whole entry never pauses


@pytest.mark.usefixtures("project")
def test_an_interruptible_entry_not_started_by_the_end_of_its_first_chunk_is_not_started_in_its_pause():
    from carbon_pipe.config.params import load_params
    from carbon_pipe.queue.local import Runner
    from carbon_pipe.queue.store import changing
    from carbon_pipe.scheduling.clock import SimulatedClock

    from .queue_project import trace

    now = time.time()
    Path("trace.csv").write_text(trace(now, 600, [300 - 2 * k for k in range(100)]))
    late = entry("late", 2 * HOUR, [(now - 50, now - 5), (now + HOUR, now + 2 * HOUR)], floor=HOUR)
    late = late.model_copy(update={"arrival": now - 55, "deadline": now + 10 * HOUR})
    with changing() as queue:
        queue.entries = [late]
    runner = Runner(load_params("params.yaml"), 1, [].append, SimulatedClock(now), 3600.0, None)
    runner.planned_at = now  # a plan was made just now: without the missed chunk, no re-plan would be due
    assert runner.step(first=False)
    assert read_queue().named("late").state == "queued" and runner.planned_at == float("-inf")  # re-plan next tick
    assert runner.step(first=False)  # the re-plan: chunks from now on
    chunks = read_queue().named("late").slot.chunks
    assert chunks and chunks[0][0] > now + HOUR and read_queue().named("late").state == "queued"  # cleaner later


def test_queue_status_tells_where_a_started_interruptible_entry_is_in_its_chunks():
    from carbon_pipe.scheduling.queued import Pause

    assert chunk_phase(SPLIT, T0 + 60, None) == "running: chunk 1 of 2 planned to end 2025-01-15T01:13:20.000000Z"
    assert chunk_phase(SPLIT, T0 + 2 * HOUR, None) == "running past chunk 1's planned end"  # no marker yet
    assert chunk_phase(SPLIT, T0 + 2 * HOUR, Pause(T0 + 3 * HOUR)) == "paused until 2025-01-15T03:13:20.000000Z"
    held = chunk_phase(SPLIT, T0 + 3 * HOUR, Pause(T0 + 3 * HOUR, T0 + 3 * HOUR + 60))
    assert held.endswith("held by queue run for a worker")
    assert chunk_phase(SPLIT, T0 + 4 * HOUR, Pause(T0 + 3 * HOUR)).endswith("(overdue: is its run still there?)")
    on_slurm = SPLIT.model_copy(update={"slurm_jobs": [7, 8]})  # the next chunk's job waits behind its lane
    assert chunk_phase(on_slurm, T0 + 4 * HOUR, Pause(T0 + 3 * HOUR)).endswith("SLURM job has not begun yet)")
    assert chunk_phase(SPLIT, T0 + 5 * HOUR, None) == "running past chunk 2's planned end"
    assert chunk_phase(entry("whole", HOUR, [(T0, T0 + HOUR)], started_at=T0), T0 + 60, None) is None


def test_the_others_are_planned_into_a_running_entrys_pause_and_never_over_its_chunk_ahead():
    """One worker; the running entry's chunk ahead is the cleanest hour of the day and stays its own: the two
    pending entries take the two hours of its pause."""
    values = np.array([300, 100, 50, 10, 400, 400, 400, 400, 400, 400], dtype=float)
    series = IntensitySeries(T0 + HOUR * np.arange(11), values, np.zeros(10, dtype=bool), "test", "XX")
    pending = [entry("one", HOUR), entry("two", HOUR)]
    now = T0 + HOUR
    plan = plan_queue(pending, [SPLIT], series, 1, now, HOUR)
    starts = sorted(slot.start for slot in plan.slots if slot.name in ("one", "two"))
    assert starts == [T0 + HOUR, T0 + 2 * HOUR]
    # Were it a whole entry running to its expected end, the first hour of the pause would not be free.
    held = entry("split", 2 * HOUR, [(T0, T0 + 2 * HOUR)], started_at=T0)
    plan = plan_queue(pending, [held], series, 1, now, HOUR)
    assert min(slot.start for slot in plan.slots if slot.name in ("one", "two")) >= T0 + 2 * HOUR


def test_a_re_plan_keeps_an_interruptible_entrys_chunks_when_it_saves_nothing():
    """Its kept slot is costed over its chunks, not over the pauses between them."""
    values = np.array([300, 100, 400, 50, 400, 400, 400, 400, 400, 400], dtype=float)
    series = IntensitySeries(T0 + HOUR * np.arange(11), values, np.zeros(10, dtype=bool), "test", "XX")
    pending = entry("split", 2 * HOUR, floor=HOUR)
    plan = plan_queue([pending], [], series, 1, T0, HOUR)
    chunks = [(chunk.start, chunk.end) for chunk in plan.slots[0].chunks]
    assert chunks == [(T0 + HOUR, T0 + 2 * HOUR), (T0 + 3 * HOUR, T0 + 4 * HOUR)]
    kept = entry("split", 2 * HOUR, chunks, floor=HOUR)
    assert not worth_moving([kept], plan, series, T0, 0.1)


@pytest.mark.usefixtures("project")
def test_an_experiment_started_in_an_interruptible_slot_follows_the_queues_chunks_without_re_planning(monkeypatch):
    """wait-for-window records the queue's chunks on the real clock (the first from the real start); between
    chunks the run sleeps to the next one as the queue placed it, fetching nothing, its pause marked for the queue
    meanwhile; past them it runs the rest."""
    from carbon_pipe.config.params import load_params
    from carbon_pipe.pipeline import wait_for_window
    from carbon_pipe.scheduling.clock import SimulatedClock
    from carbon_pipe.scheduling.queued import PauseMarker, QueueSlot
    from carbon_pipe.scheduling.replanning import Replanner

    class WatchedClock(SimulatedClock):
        """Notes what the pause marker says at every sleep."""

        def sleep(self, seconds: float) -> None:
            seen.append(marker.read())
            super().sleep(seconds)

    from .queue_project import trace

    now = time.time()
    Path("trace.csv").write_text(trace(now, 600, [300 - 5 * k for k in range(40)]))
    chunks = ((now - 5, now + 600), (now + 1800, now + 2400))
    marker, seen = PauseMarker(Path("paused").resolve()), []
    slot = QueueSlot("split", now - 50, chunks[0][0], chunks[-1][1], 1.0, 1, "milp", now - 60, chunks,
                     str(marker.path))
    for key, value in slot.environment().items():
        monkeypatch.setenv(key, value)
    params = load_params("params.yaml")
    decision = wait_for_window.run_stage(params)
    assert (decision.rule, decision.mode, decision.clock) == ("queue", "interruptible", "real")
    assert decision.chunks[0].start == pytest.approx(time.time(), abs=5) and decision.chunks[0].end == chunks[0][1]
    assert (decision.chunks[1].start, decision.chunks[1].end) == chunks[1]
    assert decision.expected_duration == pytest.approx(1200, abs=5) and "in 2 chunks" in decision.reason

    Path("trace.csv").unlink()  # a re-plan would have to fetch it
    clock, said = WatchedClock(now + 700), []
    replanner = Replanner(params, decision, 100, clock, said.append, None, "run")
    rest, outcome = replanner(50, 700.0, [])
    assert [(chunk.start, chunk.end) for chunk in rest] == [chunks[1]] and clock.now() == chunks[1][0]
    assert outcome["replan_failures"] == [] and outcome["replans"] == 0
    assert seen and {pause.until for pause in seen} == {chunks[1][0]}  # marked while it paused
    assert marker.read() is None  # and removed as it resumed
    clock.current = chunks[1][1] + 10  # the queue's chunks are over, with work left
    rest, _ = replanner(90, 1400.0, [])
    assert [(chunk.start, chunk.end) for chunk in rest] == [(clock.now(), pytest.approx(clock.now() + 1400 / 9))]
    assert any("the queue's chunks are over" in line for line in said)


@pytest.mark.usefixtures("project")
def test_under_slurm_a_run_hands_its_worker_back_at_a_chunks_end_and_the_next_chunks_job_resumes_it(monkeypatch):
    """With the slot handing back (SLURM), a pause is not slept: the run marks it and stops, checkpointed, as a
    planned stop (exit 75); the job begun at the next chunk resumes in it without a pause. A pause shorter than
    HAND_BACK_AFTER (a job begun a moment early) is slept."""
    from carbon_pipe.config.params import load_params
    from carbon_pipe.errors import TrainingStopped
    from carbon_pipe.pipeline import wait_for_window
    from carbon_pipe.scheduling.clock import SimulatedClock
    from carbon_pipe.scheduling.queued import PauseMarker, QueueSlot
    from carbon_pipe.scheduling.replanning import HAND_BACK_AFTER, Replanner

    from .queue_project import trace

    now = time.time()
    Path("trace.csv").write_text(trace(now, 600, [300 - 5 * k for k in range(40)]))
    chunks = ((now - 5, now + 600), (now + 1800, now + 2400))
    marker = PauseMarker(Path("paused").resolve())
    slot = QueueSlot("split", now - 50, chunks[0][0], chunks[-1][1], 1.0, 1, "milp", now - 60, chunks,
                     str(marker.path), hands_back=True)
    for key, value in slot.environment().items():
        monkeypatch.setenv(key, value)
    params = load_params("params.yaml")
    decision = wait_for_window.run_stage(params)
    Path("trace.csv").unlink()  # nothing between chunks fetches

    clock = SimulatedClock(now + 700)
    with pytest.raises(TrainingStopped) as stopped:
        Replanner(params, decision, 100, clock, lambda line: None, None, "run")(50, 700.0, [])
    assert stopped.value.planned and stopped.value.exit_code == 75 and stopped.value.step == 50
    assert "until" in str(stopped.value) and "resumes the run" in str(stopped.value)
    assert clock.now() == now + 700  # not slept
    assert marker.read() is not None and marker.read().resume_at == chunks[1][0]

    marker.path.unlink()  # the next chunk's job ends the pause as it begins
    clock = SimulatedClock(chunks[1][0] + 8)  # that job, begun a scheduler's tick late
    rest, _ = Replanner(params, decision, 100, clock, lambda line: None, None, "run")(50, 700.0, [])
    assert [(chunk.start, chunk.end) for chunk in rest] == [(chunks[1][0] + 8, chunks[1][1])]
    assert clock.now() == chunks[1][0] + 8

    clock = SimulatedClock(chunks[1][0] - HAND_BACK_AFTER / 2)  # begun a moment before its chunk: sleeps it out
    rest, _ = Replanner(params, decision, 100, clock, lambda line: None, None, "run")(50, 700.0, [])
    assert clock.now() == chunks[1][0] and [(chunk.start, chunk.end) for chunk in rest] == [chunks[1]]
    assert marker.read() is None
