"""`queue run`: follow the plan on the real clock, starting each entry in its slot as `dvc exp run --temp`, never
more than K at once, re-planning the entries not started yet as fresh forecasts arrive.

Every transition is written to the queue file before it happens (store.py, atomic). An experiment runs detached
(its own session), so stopping or killing `run` stops no experiment; a restarted `run` follows the ones still
running. Each launch goes through a wrapper that first creates the entry's `began` marker exclusively (O_EXCL), so
an entry is never started twice, even when `run` was killed between writing "started" and the launch, and writes
its exit status (atomically) when the experiment ends.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional

from ..artifacts import holding
from ..config.params import Params
from ..errors import CarbonPipeError, Interrupted
from ..scheduling.clock import Clock, RealClock
from ..scheduling.queued import PauseMarker, QueueSlot
from ..scheduling.wait_loop import ProgressLine
from ..signals import stop_requests, stopped_by
from ..timeutil import iso
from .planning import SLOT_TOLERANCE, QueuePolicy, check_workers, forecast, plan_queue, worth_moving
from .store import QUEUE_DIR, Entry, Queue, Slot, changing, pid_alive, read_queue, update

# Runs the experiment once: the `began` marker is taken exclusively first (a second launch of the entry exits 75
# without running anything), the exit status lands atomically in `exit`.
WRAPPER = (
    'folder=$1; shift; set -C; { echo $$ > "$folder/began"; } 2>/dev/null || exit 75; set +C; '
    '"$@" > "$folder/log" 2>&1; echo $? > "$folder/exit.tmp" && mv -f "$folder/exit.tmp" "$folder/exit"'
)
LAUNCH_GRACE = 30.0  # seconds a launched wrapper has to take its marker before the entry counts as not begun
# A paused entry due to resume within RESUME_LEAD seconds takes its worker back now. With all K taken, one due within
# HOLD_AHEAD is held, by a lease that long renewed every tick: longer than a re-plan (fetch and solve) takes, so the
# run cannot resume unseen meanwhile, and a `queue run` that stopped holds nothing for long.
RESUME_LEAD = 2.0
HOLD_AHEAD = 60.0


def experiment_command(entry: Entry) -> list[str]:
    """One DVC experiment in a temporary workspace, named after the entry (not DVC's -j: one process per entry)."""
    overrides = [part for key, value in entry.overrides.items() for part in ("-S", f"{key}={value}")]
    return ["dvc", "exp", "run", "--temp", "-n", entry.name, *overrides]


def slot_of(entry: Entry, workers: int, hands_back: bool = False) -> QueueSlot:
    assert entry.slot is not None
    slot = entry.slot
    return QueueSlot(entry.name, entry.arrival, slot.start, slot.end, slot.expected_g, workers, slot.method,
                     slot.planned_at, tuple(slot.chunks), str(entry.pause_file) if slot.chunks else None,
                     hands_back and bool(slot.chunks))


def settle(entry: Entry, now: float, launched: set[str]) -> Optional[dict]:
    """What became of a started entry: the fields to record, or None while it runs (or may yet begin)."""
    folder = entry.folder
    try:
        code = int((folder / "exit").read_text().strip())
        finished = (folder / "exit").stat().st_mtime
        note = None if code == 0 else f"dvc exp run exited {code}; its output is in {folder / 'log'}"
        return {"state": "done" if code == 0 else "failed", "exit_code": code, "finished_at": finished, "note": note}
    except (FileNotFoundError, ValueError):
        pass
    try:
        pid = int((folder / "began").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        pid = None
    if pid is None:
        if entry.name in launched or now - (entry.started_at or now) < LAUNCH_GRACE:
            return None
        return {"state": "queued", "started_at": None, "note": "relaunched: its launch never began (run was stopped)"}
    if pid_alive(pid):
        return None
    return {"state": "failed", "finished_at": now,
            "note": f"its process {pid} ended without an exit status (killed); output in {folder / 'log'}"}


def local_running(queue: Queue) -> list[Entry]:
    """The entries started here (those handed to SLURM are SLURM's to run and `queue status`'s to follow)."""
    return [entry for entry in queue.in_state("started") if not entry.slurm_jobs]


class Runner:
    def __init__(
        self, params: Params, workers: int, say: ProgressLine, clock: Clock, replan_every: float, step: Optional[float],
        policy: QueuePolicy = QueuePolicy(),
    ) -> None:
        self.params, self.workers, self.say, self.clock = params, check_workers(workers), say, clock
        self.grid, self.policy = step, policy  # the planning grid (None: the joint planner's default)
        self.replan_every, self.planned_at = replan_every, float("-inf")
        self.children: dict[str, subprocess.Popen] = {}

    def replan(self, queue: Queue, now: float, first: bool) -> None:
        """The entries not started yet, planned again around the running ones; a failed re-plan keeps the last
        plan (the first one has none to keep, so its error is raised before anything starts)."""
        pending, running = queue.in_state("queued"), local_running(queue)
        try:
            series = forecast(self.params, pending + running, now)
            plan = plan_queue(pending, running, series, self.workers, now, self.grid, self.policy)
        except CarbonPipeError as exc:
            if first or any(entry.slot is None for entry in pending):
                raise
            self.say(f"queue: re-plan failed at {iso(now)}, keeping the last plan: {exc}")
            self.planned_at = now
            return
        self.planned_at = now
        if not worth_moving(pending, plan, series, now, self.params.scheduler.min_saving_pct):
            return
        slots = {slot.name: slot for slot in plan.slots}
        with changing() as fresh:
            for entry in fresh.in_state("queued"):
                if entry.name in slots:
                    slot = slots[entry.name]
                    chunked = entry.chunk_floor is not None
                    chunks = [(chunk.start, chunk.end) for chunk in slot.chunks] if chunked else []
                    entry.slot = Slot(start=slot.start, end=slot.end, expected_g=slot.expected_g, planned_at=now,
                                      method=self.policy.method(plan), chunks=chunks)
        self.say(f"queue: planned {len(pending)} entr{'y' if len(pending) == 1 else 'ies'} at {iso(now)} "
                 f"({self.policy.method(plan)}, {plan.total_g:.3f} g expected with those running)")

    def launch(self, entry: Entry, now: float) -> None:
        entry = update(entry.name, state="started", started_at=now, note=None)
        entry.folder.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **slot_of(entry, self.workers).environment()}
        self.children[entry.name] = subprocess.Popen(
            ["sh", "-c", WRAPPER, "carbon-pipe-queue", str(entry.folder), *experiment_command(entry)],
            env=environment, start_new_session=True, stdin=subprocess.DEVNULL,
        )
        self.say(f"queue: started {entry.name} at {iso(now)} (slot {iso(entry.slot.start)})")

    def step(self, first: bool) -> bool:
        """One tick: settle what ended, re-plan when due, start what is due. False when nothing is left."""
        now = self.clock.now()
        for name, child in list(self.children.items()):
            if child.poll() is not None:
                del self.children[name]
        queue = read_queue()
        for entry in local_running(queue):
            outcome = settle(entry, now, set(self.children))
            if outcome is not None:
                update(entry.name, **outcome)
                said = f": {outcome['note']}" if outcome["note"] else ""
                self.say(f"queue: {entry.name} {outcome['state']}{said}")
        for entry in read_queue().in_state("queued"):
            if entry.deadline - entry.duration < now:
                note = f"missed: its latest start {iso(entry.deadline - entry.duration)} passed before a worker or " \
                       "`queue run` could start it; not started"
                update(entry.name, state="failed", finished_at=now, note=note)
                self.say(f"queue: {entry.name} {note}")
        queue = read_queue()
        pending, running = queue.in_state("queued"), local_running(queue)
        if not pending and not running:
            return False
        self.workers_taken(running)  # holds renewed before a re-plan, which may take a while
        if pending and (first or now >= self.planned_at + self.replan_every or any(e.slot is None for e in pending)):
            self.replan(queue, now, first)
            pending = read_queue().in_state("queued")
        now = self.clock.now()
        missed_first = {e.name for e in pending if e.slot and e.slot.chunks and now >= e.slot.chunks[0][1]}
        if missed_first:  # never started in what was its pause: planned again next tick
            self.planned_at = float("-inf")
        due = sorted((e for e in pending if e.slot and e.slot.start <= now + SLOT_TOLERANCE and e.name not in
                      missed_first), key=lambda e: e.slot.start)
        for entry in due[: max(0, self.workers - self.workers_taken(running))]:
            self.launch(entry, now)
        return True

    def workers_taken(self, running: list[Entry]) -> int:
        """The workers the started entries hold: each one, but an interruptible one pausing between its chunks.
        One about to resume takes its worker back before anything new starts; with none free it is held (and let go
        when one frees), so that never more than K run."""
        now = self.clock.now()
        pauses = {entry.name: pause for entry in running if (pause := entry.pause()) is not None}
        taken = len(running) - len(pauses)
        for entry in sorted((e for e in running if e.name in pauses), key=lambda e: pauses[e.name].resume_at):
            pause, marker = pauses[entry.name], PauseMarker(entry.pause_file)
            if pause.resume_at > now + HOLD_AHEAD:
                continue  # its worker is free a while yet
            if taken < self.workers:
                if pause.held_until is not None:
                    marker.release()
                    self.say(f"queue: {entry.name} let go: a worker is free for its next chunk")
                if pause.held_until is not None or pause.resume_at <= now + RESUME_LEAD:
                    taken += 1  # its worker is back
            elif marker.hold(now + HOLD_AHEAD) and pause.held_until is None:
                self.say(f"queue: {entry.name} held: its next chunk waits for a worker ({self.workers} taken)")
        return taken


def run_queue(
    params: Params, workers: int, say: ProgressLine, replan_every: Optional[float] = None, step: Optional[float] = None,
    tick: float = 1.0, clock: Optional[Clock] = None, policy: QueuePolicy = QueuePolicy(),
) -> Queue:
    """Run the queue until every entry is done, failed or cancelled. SIGTERM or Ctrl-C stop following it (the
    experiments running go on; run again to follow them)."""
    every = replan_every or params.scheduler.replan_interval
    runner = Runner(params, workers, say, clock or RealClock(), every, step, policy)
    with holding(QUEUE_DIR / "run", "queue run"), stop_requests(interrupt=True) as received:
        try:
            first = True
            while runner.step(first):
                first = False
                runner.clock.sleep(tick)
        except KeyboardInterrupt:
            stopped = stopped_by(received)
            raise Interrupted(
                f"queue run: stopped by {stopped.name}; experiments already started go on, nothing else starts: "
                "`carbon-pipe queue run` again follows them", stopped,
            ) from None
    return read_queue()
