"""`queue submit --slurm` and `queue status`: each entry as a SLURM batch job that begins at its slot (`sbatch
--begin`), in its own clone of the project, its experiment pushed back to the project (`dvc exp push`).

An interruptible entry is one job per chunk, all in the entry's clone: at a chunk's end its run checkpoints, marks
the pause and exits (the slot `hands_back`), handing its worker back, and the job of its next chunk, which begins at
that chunk and waits for the one before it to have ended well (`afterok`), resumes it. A job whose entry already
ended (its work took less than planned) exits at once; the jobs after a chunk that failed are cancelled by SLURM
(`--kill-on-invalid-dep`).

SLURM drops a start time in the past, so one is clamped to now, and said. Submitting again re-plans: jobs still
pending move to their new slot (`scontrol update JobId=N StartTime=`; a pending interruptible entry, whose chunks may
now be more or fewer, is cancelled and submitted again), entries not yet submitted are submitted. Times go to SLURM
relative to now (`now+N`), so the controller's time zone cannot shift them.

SLURM is told the K workers too: the plan's K lanes are chains of jobs. Each job (each chunk's job) waits for every job
before it in its lane (`--dependency=afterany:<job>,afterany:<job>...`: SLURM counts a cancelled job as done, so waiting
for the last alone would let a job start beside one still running ahead of a cancelled one) and is named after its lane
(`cq-<project>-w<k>`). So however late a job runs or early SLURM would start one, never more than K of the project's
jobs run at once, and a lane runs in the order of its slots. (`--dependency=singleton` would serve a lane in submission
order instead: a re-plan that gave a later-submitted entry the earlier slot would leave it waiting for the
earlier-submitted one to run and leave.) A re-plan rewrites every pending job's slot, lane and dependency with the
pending jobs held (`scontrol hold`), so none starts from a half-rewritten plan, then releases them. Each job is in the
queue file as soon as SLURM has taken it, so a submit cut short leaves no job the next one does not know.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ..artifacts import write_text
from ..config.params import Params
from ..errors import CarbonPipeError, UsageError
from ..scheduling.queued import SLOT_VARIABLE
from ..scheduling.wait_loop import ProgressLine
from ..signals import stop_requests
from ..timeutil import iso
from .local import WRAPPER, slot_of
from .planning import QueuePolicy, check_workers, chunk_phase, forecast, piece_lanes, plan_queue
from .store import Entry, Slot, changing, read_queue, update

TIME_MARGIN = 1.5  # --time: the expected duration with this margin (SLURM ends a job at its time limit)
HOLD_TRIES = 3
# What squeue or sacct show of a job that will not run again (squeue keeps one for MinJobAge after it ends).
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE")


def _slurm(*command: str) -> str:
    if shutil.which(command[0]) is None:
        raise UsageError(f"{command[0]}: not found; submit --slurm needs SLURM's commands on PATH")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CarbonPipeError(f"{' '.join(command[:2])}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return done.stdout


def clone_for(entry: Entry, project: Path) -> Path:
    """The entry's own clone of the project's committed HEAD, sharing the project's DVC cache (outputs are not
    copied, and the experiment's land where the project finds them)."""
    work = entry.folder.resolve() / "work"
    if not (work / ".git").is_dir():
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["git", "clone", "--quiet", str(project), str(work)], check=True, capture_output=True)
        subprocess.run(["dvc", "config", "--local", "cache.dir", str(project / ".dvc" / "cache")], cwd=work,
                       check=True, capture_output=True)
    return work


def batch_script(entry: Entry, work: Path, chunk: int = 0, chunks: int = 0) -> str:
    """Runs the experiment through the local wrapper (one begin, one exit status), then pushes it to the project.
    The slot is read from the entry's slot.json as the job begins, so a job moved by a re-plan records its new slot.

    Chunk `chunk` of an interruptible entry's `chunks` (from 1) runs the same command in the same clone, which
    resumes the run from its checkpoint, through the wrapper in a folder of its own (chunk-<k>). It exits at once if
    the entry ended before it; it ends the pause (the marker the last chunk's run left); when its run hands the
    worker back at the chunk's end (the marker is there again) it exits 0 for the next chunk's job, and otherwise
    records the entry's exit status (and log) where a whole entry's job does."""
    overrides = " ".join(shlex.quote(f"-S{key}={value}") for key, value in entry.overrides.items())
    folder = shlex.quote(str(entry.folder.resolve()))
    experiment = f"dvc exp run -n {shlex.quote(entry.name)} {overrides}"
    push = f"dvc exp push --no-cache origin {shlex.quote(entry.name)}"
    slot = f"{SLOT_VARIABLE}=$(cat {folder}/slot.json); export {SLOT_VARIABLE}\n"
    command = shlex.quote(f"{experiment} && {push}")

    def run(where: str) -> str:
        return f"sh -c {shlex.quote(WRAPPER)} carbon-pipe-queue {where} sh -c {command}\n"

    if not chunk:
        return (f"#!/bin/sh\ncd {shlex.quote(str(work))}\n{slot}{run(folder)}"
                f"exit $(cat {folder}/exit 2>/dev/null || echo 1)\n")
    mine, paused = f"{folder}/chunk-{chunk}", shlex.quote(str(entry.pause_file))
    handed_back = f'[ "$code" != 0 ] && [ -e {paused} ] && exit 0\n' if chunk < chunks else ""
    return (
        f"#!/bin/sh\ncd {shlex.quote(str(work))}\n[ -e {folder}/exit ] && exit 0\nrm -f {paused}\nmkdir -p {mine}\n"
        f"{slot}{run(mine)}code=$(cat {mine}/exit 2>/dev/null || echo 1)\n{handed_back}"
        f"cp {mine}/log {folder}/log 2>/dev/null\necho $code > {folder}/exit.tmp && mv -f {folder}/exit.tmp "
        f"{folder}/exit\nexit $code\n"
    )


def write_slot(entry: Entry, workers: int) -> None:
    write_text(entry.folder / "slot.json", slot_of(entry, workers, hands_back=True).environment()[SLOT_VARIABLE] + "\n")


def _timing(entry: Entry, begin: float) -> list[str]:
    """--begin, --deadline and --time. A chunk's job gets the whole entry's time limit: when its chunk began late,
    it runs what is left of the entry."""
    now = time.time()  # SLURM takes times relative to when it is called, not to when the plan was made
    limit = max(1, math.ceil(entry.duration * TIME_MARGIN / 60))
    deadline = max(entry.deadline, begin + limit * 60 + 60)  # SLURM refuses a job whose time limit passes it
    return [f"--begin=now+{max(0, round(begin - now))}", f"--deadline=now+{round(deadline - now)}", f"--time={limit}"]


def _begin(entry: Entry, start: float, now: float, say: ProgressLine) -> float:
    if start < now:
        say(f"queue: {entry.name}: its slot {iso(start)} is past (SLURM drops past start times): begins now")
        return now
    return start


@dataclass
class Piece:
    """One SLURM job of the plan: a whole entry, or one of an interruptible entry's chunks (`chunk` from 1, of
    `chunks`; 0 for a whole entry), with its job once it has one."""

    entry: str
    start: float
    end: float
    chunk: int = 0
    chunks: int = 0
    job: Optional[int] = None
    pending: bool = True  # False: its job runs (it keeps its place and dependency)
    fixed: bool = False  # a job of an entry already running (a later chunk's): it keeps its slot

    @property
    def key(self) -> str:
        return f"{self.entry}#{self.chunk}" if self.chunk else self.entry


def submit(
    params: Params, workers: int, project: Path, say: ProgressLine, now: float, step: Optional[float] = None,
    policy: QueuePolicy = QueuePolicy(),
) -> list[Entry]:
    """Plan the entries not started, submit those not submitted, move those pending to their new slot and lane."""
    check_workers(workers)
    refresh(now)  # what ended since, and the real starts of what runs
    with _holding_pending() as (pending, running):
        series = forecast(params, pending + running, now)
        plan = plan_queue(pending, running, series, workers, now, step, policy)
        for entry in pending:
            if entry.chunk_floor is not None and entry.slurm_jobs:  # its chunks may have changed: submitted afresh,
                # cancelled before its new slot is written, so the queue never pairs the new slot with old jobs
                with _together():
                    _cancel(entry.slurm_jobs)
                    update(entry.name, state="queued", slurm_jobs=[], note=None)
        names = {entry.name for entry in pending}
        with changing() as fresh:
            for slot in plan.slots:
                if slot.name in names:
                    entry = fresh.named(slot.name)
                    chunked = entry.chunk_floor is not None
                    chunks = [(chunk.start, chunk.end) for chunk in slot.chunks] if chunked else []
                    entry.slot = Slot(start=slot.start, end=slot.end, expected_g=slot.expected_g, planned_at=now,
                                      method=policy.method(plan), chunks=chunks)
        fixed = [piece for entry in running for piece in _running_pieces(entry, now)]
        planned = [piece for entry in pending for piece in _pieces(read_queue().named(entry.name))]
        kept = {piece.key: lane for piece in fixed if (lane := _job_lane(piece.job, project)) is not None}
        lane_of = piece_lanes([(piece.key, piece.start, piece.end) for piece in fixed + planned], workers, kept)
        _chain(fixed + planned, lane_of, project, workers, now, say)
    return read_queue().entries


def _pieces(entry: Entry) -> list[Piece]:
    """An entry's jobs as its slot plans them: one, or one per chunk."""
    assert entry.slot is not None
    spans = entry.slot.chunks or [(entry.slot.start, entry.slot.end)]
    chunked = len(spans) if entry.slot.chunks else 0
    return [Piece(entry.name, start, end, index if chunked else 0, chunked)
            for index, (start, end) in enumerate(spans, start=1)]


def _running_pieces(entry: Entry, now: float) -> list[Piece]:
    """The jobs of a started entry SLURM has yet to finish, where the plan put them (a running one from its start
    until its planned end, at least until now): they keep their lanes, and those pending their slots. A chunk left
    without a job (a submit cut short) comes too, to be submitted, if the run can still be resumed."""
    if not entry.slurm_jobs:  # started by `queue run` here: it keeps its worker in the plan, SLURM has no job of it
        return []
    planned = _pieces(entry) if entry.slot is not None else []
    pieces = []
    for index, piece in enumerate(planned):
        piece.fixed = True
        if index >= len(entry.slurm_jobs):  # a submit cut short before this chunk's job: submitted now
            if _resumable(entry):
                pieces.append(piece)
            continue
        state = _state(entry.slurm_jobs[index])
        if state is None or state in ENDED:
            continue
        piece.job, piece.pending = entry.slurm_jobs[index], state == "PENDING"
        if not piece.pending:
            piece.start, piece.end = min(piece.start, now), max(piece.end, now)
        pieces.append(piece)
    return pieces


def _chain(pieces: list[Piece], lane_of: dict[str, int], project: Path, workers: int, now: float,
           say: ProgressLine) -> None:
    """Every piece in start order: after every piece before it in its lane (afterany), a chunk after its entry's
    chunk before it (afterok). Running jobs stay as they are, pending ones are moved, new ones submitted."""
    in_lane: dict[int, list[int]] = {}
    jobs_of: dict[str, list[int]] = {}
    for piece in sorted(pieces, key=lambda piece: (piece.pending, piece.start, piece.entry, piece.chunk)):
        lane = lane_of[piece.key]
        own = jobs_of.get(piece.entry, [])[-1:]
        after = [f"afterok:{job}" for job in own]
        # every job still there before it in its lane, not only the last: SLURM counts a cancelled job (by
        # --kill-on-invalid-dep after a failed chunk, or `queue cancel`) as done, which would let the next one start
        # beside a job still running ahead of the cancelled one
        after += [f"afterany:{job}" for job in in_lane.get(lane, [])]
        if piece.pending:
            _place(read_queue().named(piece.entry), piece, lane_name(project, lane), ",".join(after), project,
                   workers, now, say)
        assert piece.job is not None
        in_lane.setdefault(lane, []).append(piece.job)
        jobs_of.setdefault(piece.entry, []).append(piece.job)


def _place(entry: Entry, piece: Piece, name: str, dependency: str, project: Path, workers: int, now: float,
           say: ProgressLine) -> None:
    """Submit the piece, or move its pending job, to begin at its slot in the lane `name` after `dependency`."""
    begin = _begin(entry, piece.start, now, say)
    what = entry.name + (f" chunk {piece.chunk} of {piece.chunks}" if piece.chunk else "")
    if piece.chunk <= 1:
        write_slot(entry, workers)
    if piece.job is None and not piece.chunk and entry.slurm_jobs:
        piece.job = entry.slurm_jobs[0]  # a whole entry's pending job moves
    if piece.job is not None:
        _slurm("scontrol", "update", f"JobId={piece.job}", f"StartTime=now+{max(0, round(begin - time.time()))}",
               f"JobName={name}", f"Dependency={dependency}")
        if not piece.fixed:
            say(f"queue: {what}: SLURM job {piece.job} moved to {iso(begin)}")
        return
    work = clone_for(entry, project)
    script = entry.folder / (f"job-{piece.chunk}.sh" if piece.chunk else "job.sh")
    write_text(script, batch_script(entry, work, piece.chunk, piece.chunks))
    chained = [f"--dependency={dependency}", "--kill-on-invalid-dep=yes"] if dependency else []
    output = entry.folder.resolve() / (f"slurm-{piece.chunk}.out" if piece.chunk else "slurm.out")
    with _together():  # recorded at once: a submit cut short leaves no job unknown
        piece.job = int(_slurm("sbatch", "--parsable", f"--job-name={name}", *chained, *_timing(entry, begin),
                               f"--output={output}", str(script.resolve())).split(";")[0])
        jobs = [*read_queue().named(entry.name).slurm_jobs, piece.job]
        first = max(now, entry.slot.start) if entry.slot is not None else now
        update(entry.name, state="started", slurm_jobs=jobs,
               note=f"SLURM job{'s' * (len(jobs) > 1)} {', '.join(map(str, jobs))}, begins {iso(first)}")
    say(f"queue: {what}: SLURM job {piece.job} begins {iso(begin)}")


@contextlib.contextmanager
def _together() -> Iterator[None]:
    """A change to SLURM and its record in the queue file, which Ctrl-C or SIGTERM does not split: a signal waits
    for both (a second one stops at once)."""
    with stop_requests() as received:
        yield
    if received:
        raise KeyboardInterrupt


def _cancel(jobs: list[int]) -> None:
    """scancel the jobs SLURM has not ended (one it has purged would fail the whole call)."""
    live = [str(job) for job in jobs if _state(job) not in (None, *ENDED)]
    if live:
        _slurm("scancel", *live)


def _state(job: int) -> Optional[str]:
    return (job_state(job) or {}).get("state")


@contextlib.contextmanager
def _holding_pending() -> Iterator[tuple[list[Entry], list[Entry]]]:
    """(the entries not started, those running), every pending SLURM job of either held until the block ends.
    A job that SLURM started before it was held is running: look again."""
    for _ in range(HOLD_TRIES):
        entries = read_queue().in_state("queued", "started")
        jobs = [job for entry in entries for job in entry.slurm_jobs if _state(job) == "PENDING"]
        try:
            if _hold(jobs):
                entries = read_queue().in_state("queued", "started")
                yield ([entry for entry in entries if _pending(entry)],
                       [entry for entry in entries if entry.state == "started" and not _pending(entry)])
                return
        finally:
            _release(jobs)
    raise CarbonPipeError(f"SLURM kept starting jobs while they were re-planned ({HOLD_TRIES} tries): submit again")


def _hold(jobs: list[int]) -> bool:
    """Hold each job (one held already stays so); False when one is no longer pending: SLURM started it meanwhile."""
    for job in jobs:
        held = subprocess.run(["scontrol", "hold", str(job)], capture_output=True, text=True)
        seen = job_state(job) or {}
        if seen.get("state") != "PENDING":
            return False
        if held.returncode != 0 and not seen.get("reason", "").startswith("JobHeld"):
            raise CarbonPipeError(f"scontrol hold {job}: {(held.stderr or held.stdout).strip()}")
    return True


def _release(jobs: list[int]) -> None:
    """Release the held jobs; one that began meanwhile (held as it started), or was cancelled, has nothing to
    release."""
    if jobs and subprocess.run(["scontrol", "release", ",".join(str(job) for job in jobs)],
                               capture_output=True).returncode != 0:
        for job in jobs:
            if _state(job) == "PENDING":
                _slurm("scontrol", "release", str(job))


def lane_name(project: Path, lane: int) -> str:
    """The SLURM job name of a worker's lane: one per project, so two projects' queues do not hold each other up."""
    tag = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:8]
    return f"cq-{tag}-w{lane}"


def _job_lane(job: Optional[int], project: Path) -> Optional[int]:
    """The lane a job holds, read from its SLURM job name."""
    prefix = lane_name(project, 0)[:-1]
    seen = None if job is None else job_state(job)
    if seen is not None and seen.get("name", "").startswith(prefix) and seen["name"][len(prefix):].isdigit():
        return int(seen["name"][len(prefix):])
    return None


def _pending(entry: Entry) -> bool:
    """Not started yet: queued, or submitted to SLURM with its (first) job still pending there."""
    if entry.state == "queued":
        return True
    return bool(entry.slurm_jobs) and _state(entry.slurm_jobs[0]) == "PENDING"


def job_state(job: int) -> Optional[dict[str, str]]:
    """squeue's view of a job (state, reason, start time, name), else sacct's; None once SLURM has forgotten it. No
    squeue, or a controller that does not answer, is an error: taken for a forgotten job, it would mark a running
    entry failed."""
    if shutil.which("squeue") is None:
        raise UsageError(f"squeue: not found; the queue has SLURM jobs (job {job}), and only SLURM can say what "
                         "became of them: run this where SLURM's commands are")
    found = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T|%r|%S|%j"], capture_output=True, text=True)
    if found.returncode != 0 and "Invalid job id" not in found.stderr:
        raise CarbonPipeError(f"squeue -j {job}: {found.stderr.strip() or found.returncode}: SLURM did not answer; "
                              "try again")
    if found.returncode == 0 and found.stdout.strip():
        state, reason, start, name = found.stdout.strip().split("|", 3)
        return {"job": str(job), "state": state, "reason": reason, "start": start, "name": name}
    if shutil.which("sacct") is not None:
        found = subprocess.run(["sacct", "-n", "-P", "-X", "-j", str(job), "-o", "State,Reason,Start,JobName"],
                               capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            state, reason, start, name = found.stdout.strip().splitlines()[0].split("|", 3)
            return {"job": str(job), "state": state.split()[0], "reason": reason, "start": start, "name": name}
    return None


def refresh(now: float) -> list[tuple[Entry, Optional[dict[str, str]]]]:
    """Record what became of submitted jobs (from the entry's exit marker; the real start from its first job, or
    the `began` marker that job's wrapper wrote) and return every entry with SLURM's view of its current job (the
    first not ended, else its last)."""
    rows = []
    for entry in read_queue().entries:
        seen_all = [job_state(job) for job in entry.slurm_jobs]
        current = [seen for seen in seen_all if seen is not None and seen["state"] not in ENDED] or seen_all[-1:]
        seen = current[0] if current else None
        if entry.slurm_jobs and entry.state == "started":
            first = entry.folder / ("chunk-1" if entry.slot is not None and entry.slot.chunks else ".")
            ended = entry.folder / "exit"
            fields: dict = {}
            if entry.started_at is None and (started := _started(seen_all[0], first / "began")) is not None:
                fields["started_at"] = started
            if ended.exists():
                code = int(ended.read_text().strip() or 1)
                fields.update(state="done" if code == 0 else "failed", exit_code=code,
                              finished_at=ended.stat().st_mtime,
                              note=None if code == 0 else f"exit {code}; see {entry.folder / 'log'}")
            elif all(seen is None or seen["state"] in ENDED for seen in seen_all) and (
                len(entry.slurm_jobs) >= _job_count(entry) or not entry.pause_file.exists()
            ):  # (one short of a chunk's job, a submit cut short after a hand-back, waits for the next submit)
                jobs = ", ".join(map(str, entry.slurm_jobs))
                fields.update(state="failed", finished_at=now, note=f"SLURM job(s) {jobs} ended without an exit "
                              f"status (cancelled or over the time limit); see {entry.folder}/slurm*.out")
            if fields:
                entry = update(entry.name, **fields)
        rows.append((entry, seen))
    return rows


def _job_count(entry: Entry) -> int:
    return len(entry.slot.chunks) if entry.slot is not None and entry.slot.chunks else 1


def _resumable(entry: Entry) -> bool:
    """Whether an entry short of a chunk's job can still go on: its last job lives, or ended handing its worker back
    (its pause is marked); not when that job was killed, cancelled or failed."""
    return _state(entry.slurm_jobs[-1]) not in (None, *ENDED) or entry.pause_file.exists()


def _started(seen: Optional[dict[str, str]], began: Path) -> Optional[float]:
    """When the job really began: SLURM's start time while it knows the job (the controller's local time), else
    when the job's wrapper took its marker."""
    from datetime import datetime

    if seen is not None and seen["state"] not in ("PENDING", "CONFIGURING"):
        try:
            return datetime.strptime(seen["start"], "%Y-%m-%dT%H:%M:%S").timestamp()
        except ValueError:
            pass
    return began.stat().st_mtime if began.exists() else None


def cancel_entries(names: list[str]) -> list[Entry]:
    """The entries named, checked first (each must be queued, or pending on SLURM), their SLURM jobs cancelled."""
    queue = read_queue()
    entries = [queue.named(name) for name in names]
    for entry in entries:
        if not _pending(entry):
            raise UsageError(f"entry {entry.name}: {entry.state}, not waiting to start: nothing to cancel")
    for entry in entries:
        with _together():
            _cancel(entry.slurm_jobs)
            update(entry.name, state="cancelled")
    return entries


def status_records(now: float) -> list[dict]:
    """`queue status`: every entry as it stands, with SLURM's view of its job."""
    def moment(seconds: Optional[float]) -> Optional[str]:
        return None if seconds is None else iso(seconds)

    return [
        {
            "entry": entry.name, "state": entry.state, "overrides": entry.overrides,
            "slot_start": None if entry.slot is None else iso(entry.slot.start),
            "started": moment(entry.started_at), "finished": moment(entry.finished_at), "exit_code": entry.exit_code,
            "slurm_jobs": entry.slurm_jobs, "slurm": seen, "note": entry.note,
            "chunks": [[iso(start), iso(end)] for start, end in entry.slot.chunks] if entry.slot else [],
            "phase": chunk_phase(entry, now, entry.pause()),
        }
        for entry, seen in refresh(now)
    ]


def render_status(records: list[dict]) -> str:
    lines = []
    for row in records:
        seen = row["slurm"]
        slurm = "" if seen is None else f"  SLURM {seen['job']} {seen['state']} ({seen['reason']}, " \
            f"start {seen['start']})"
        lines.append(
            f"{row['entry']:<14} {row['state']:<9} slot {str(row['slot_start'])[:19]:<19} "
            f"started {str(row['started'])[:19]:<19}{slurm}" + (f"  {row['phase']}" if row["phase"] else "")
            + (f"  {row['note']}" if row["note"] else "")
        )
    return "\n".join(lines) or "the queue is empty"
