"""`queue submit --slurm` and `queue status`: each entry as one SLURM batch job that begins at its slot
(`sbatch --begin`), in its own clone of the project, its experiment pushed back to the project (`dvc exp push`).

SLURM drops a start time in the past, so one is clamped to now, and said. Submitting again re-plans: jobs still
pending move to their new slot (`scontrol update JobId=N StartTime=`), entries not yet submitted are submitted.
Times go to SLURM relative to now (`now+N`), so the controller's time zone cannot shift them.

SLURM is told the K workers too: the plan's K lanes are chains of jobs. Each job waits for the one before it in its
lane (`--dependency=afterany:<job>`, the lane's running jobs for the first) and is named after its lane
(`cq-<project>-w<k>`). So however late a job runs or early SLURM would start one, never more than K of the
project's jobs run at once, and a lane runs in the order of its slots. (`--dependency=singleton` would serve a lane
in submission order instead: a re-plan that gave a later-submitted entry the earlier slot would leave it waiting
for the earlier-submitted one to run and leave.) A re-plan rewrites every pending job's slot, lane and dependency
with the pending jobs held (`scontrol hold`), so none starts from a half-rewritten plan, then releases them.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

from ..artifacts import write_text
from ..config.params import Params
from ..errors import CarbonPipeError, UsageError
from ..scheduling.joint import JointPlan
from ..scheduling.queued import SLOT_VARIABLE
from ..scheduling.wait_loop import ProgressLine
from ..timeutil import iso
from .local import WRAPPER, slot_of
from .planning import QueuePolicy, check_workers, chunk_phase, forecast, lanes, plan_queue, refuse_chunked
from .store import Entry, Slot, changing, read_queue, update

TIME_MARGIN = 1.5  # --time: the expected duration with this margin (SLURM ends a job at its time limit)
HOLD_TRIES = 3


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


def batch_script(entry: Entry, work: Path) -> str:
    """Runs the experiment through the local wrapper (one begin, one exit status), then pushes it to the project.
    The slot is read from the entry's slot.json as the job begins, so a job moved by a re-plan records its new slot."""
    overrides = " ".join(shlex.quote(f"-S{key}={value}") for key, value in entry.overrides.items())
    folder = shlex.quote(str(entry.folder.resolve()))
    experiment = f"dvc exp run -n {shlex.quote(entry.name)} {overrides}"
    push = f"dvc exp push --no-cache origin {shlex.quote(entry.name)}"
    return (
        f"#!/bin/sh\ncd {shlex.quote(str(work))}\n{SLOT_VARIABLE}=$(cat {folder}/slot.json); export {SLOT_VARIABLE}\n"
        f"sh -c {shlex.quote(WRAPPER)} carbon-pipe-queue {folder} sh -c {shlex.quote(f'{experiment} && {push}')}\n"
        f"exit $(cat {folder}/exit 2>/dev/null || echo 1)\n"
    )


def write_slot(entry: Entry, workers: int) -> None:
    write_text(entry.folder / "slot.json", slot_of(entry, workers).environment()[SLOT_VARIABLE] + "\n")


def _timing(entry: Entry, begin: float) -> list[str]:
    now = time.time()  # SLURM takes times relative to when it is called, not to when the plan was made
    limit = max(1, math.ceil(entry.duration * TIME_MARGIN / 60))
    deadline = max(entry.deadline, begin + limit * 60 + 60)  # SLURM refuses a job whose time limit passes it
    return [f"--begin=now+{max(0, round(begin - now))}", f"--deadline=now+{round(deadline - now)}", f"--time={limit}"]


def _begin(entry: Entry, now: float, say: ProgressLine) -> float:
    assert entry.slot is not None
    if entry.slot.start < now:
        say(f"queue: {entry.name}: its slot {iso(entry.slot.start)} is past (SLURM drops past start times): begins now")
        return now
    return entry.slot.start


def submit(
    params: Params, workers: int, project: Path, say: ProgressLine, now: float, step: Optional[float] = None,
    policy: QueuePolicy = QueuePolicy(),
) -> list[Entry]:
    """Plan the entries not started, submit those not submitted, move those pending to their new slot and lane."""
    check_workers(workers)
    refuse_chunked(read_queue().in_state("queued"))
    refresh(now)  # what ended since, and the real starts of what runs
    with _holding_pending() as (pending, running):
        series = forecast(params, pending + running, now)
        plan = plan_queue(pending, running, series, workers, now, step, policy)
        with changing() as fresh:
            for slot in plan.slots:
                if any(slot.name == entry.name for entry in pending):
                    fresh.named(slot.name).slot = Slot(start=slot.start, end=slot.end, expected_g=slot.expected_g,
                                                       planned_at=now, method=policy.method(plan))
        lane_of = lanes(plan, workers, _running_lanes(running, project))
        for lane, names in _chains(plan, lane_of, pending).items():
            after = [job for entry in running if lane_of[entry.name] == lane and (job := entry.slurm_job) is not None]
            for name in names:
                after = [_place(read_queue().named(name), lane_name(project, lane), after, project, workers, now, say)]
    return read_queue().entries


def _chains(plan: JointPlan, lane_of: dict[str, int], pending: list[Entry]) -> dict[int, list[str]]:
    """Each lane's pending entries in the order of their slots."""
    names = {entry.name for entry in pending}
    chains: dict[int, list[str]] = {}
    for slot in sorted(plan.slots, key=lambda slot: (slot.start, slot.name)):
        if slot.name in names:
            chains.setdefault(lane_of[slot.name], []).append(slot.name)
    return chains


def _place(
    entry: Entry, name: str, after: list[int], project: Path, workers: int, now: float, say: ProgressLine
) -> int:
    """Submit the entry, or move its pending job, to begin at its slot in the lane `name` after the jobs `after`."""
    begin = _begin(entry, now, say)
    write_slot(entry, workers)
    dependency = "afterany:" + ":".join(str(job) for job in after) if after else ""
    if entry.slurm_job is not None:
        _slurm("scontrol", "update", f"JobId={entry.slurm_job}", f"StartTime=now+{max(0, round(begin - time.time()))}",
               f"JobName={name}", f"Dependency={dependency}")
        say(f"queue: {entry.name}: SLURM job {entry.slurm_job} moved to {iso(begin)}")
        return entry.slurm_job
    work = clone_for(entry, project)
    script = entry.folder / "job.sh"
    write_text(script, batch_script(entry, work))
    chained = [f"--dependency={dependency}"] if dependency else []
    job = int(_slurm("sbatch", "--parsable", f"--job-name={name}", *chained, *_timing(entry, begin),
                     f"--output={entry.folder.resolve() / 'slurm.out'}", str(script.resolve())).split(";")[0])
    update(entry.name, state="started", slurm_job=job, note=f"SLURM job {job}, begins {iso(begin)}")
    say(f"queue: {entry.name}: SLURM job {job} begins {iso(begin)}")
    return job


@contextlib.contextmanager
def _holding_pending() -> Iterator[tuple[list[Entry], list[Entry]]]:
    """(the entries not started, those running), the pending SLURM jobs among the first held until the block ends.
    A job that SLURM started before it was held is running: look again."""
    for _ in range(HOLD_TRIES):
        pending = [entry for entry in read_queue().in_state("queued", "started") if _pending(entry)]
        jobs = [entry.slurm_job for entry in pending if entry.slurm_job is not None]
        try:
            if _hold(jobs):
                yield pending, [entry for entry in read_queue().in_state("started") if not _pending(entry)]
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
    """Release the held jobs; one that began meanwhile (held as it started) has nothing to release."""
    if jobs and subprocess.run(["scontrol", "release", ",".join(str(job) for job in jobs)],
                               capture_output=True).returncode != 0:
        for job in jobs:
            if (job_state(job) or {}).get("state") == "PENDING":
                _slurm("scontrol", "release", str(job))


def lane_name(project: Path, lane: int) -> str:
    """The SLURM job name of a worker's lane: one per project, so two projects' queues do not hold each other up."""
    tag = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:8]
    return f"cq-{tag}-w{lane}"


def _running_lanes(running: list[Entry], project: Path) -> dict[str, int]:
    """The lane each running job holds, read from its SLURM job name."""
    prefix = lane_name(project, 0)[:-1]
    held = {}
    for entry in running:
        seen = None if entry.slurm_job is None else job_state(entry.slurm_job)
        if seen is not None and seen.get("name", "").startswith(prefix) and seen["name"][len(prefix):].isdigit():
            held[entry.name] = int(seen["name"][len(prefix):])
    return held


def _pending(entry: Entry) -> bool:
    """Not started yet: queued, or submitted to SLURM and still pending there."""
    if entry.state == "queued":
        return True
    return entry.slurm_job is not None and (job_state(entry.slurm_job) or {}).get("state") == "PENDING"


def job_state(job: int) -> Optional[dict[str, str]]:
    """squeue's view of a job (state, reason, start time, name), else sacct's; None once SLURM has forgotten it."""
    if shutil.which("squeue") is not None:
        found = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T|%r|%S|%j"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            state, reason, start, name = found.stdout.strip().split("|", 3)
            return {"state": state, "reason": reason, "start": start, "name": name}
    if shutil.which("sacct") is not None:
        found = subprocess.run(["sacct", "-n", "-P", "-X", "-j", str(job), "-o", "State,Reason,Start,JobName"],
                               capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            state, reason, start, name = found.stdout.strip().splitlines()[0].split("|", 3)
            return {"state": state.split()[0], "reason": reason, "start": start, "name": name}
    return None


def refresh(now: float) -> list[tuple[Entry, Optional[dict[str, str]]]]:
    """Record what became of submitted jobs (from their exit markers; the real start from the `began` marker the
    job wrote as it began) and return every entry with SLURM's current view of its job."""
    rows = []
    for entry in read_queue().entries:
        seen = None if entry.slurm_job is None else job_state(entry.slurm_job)
        if entry.slurm_job is not None and entry.state == "started":
            began, ended = entry.folder / "began", entry.folder / "exit"
            fields: dict = {}
            if entry.started_at is None and (started := _started(seen, began)) is not None:
                fields["started_at"] = started
            if ended.exists():
                code = int(ended.read_text().strip() or 1)
                fields.update(state="done" if code == 0 else "failed", exit_code=code,
                              finished_at=ended.stat().st_mtime,
                              note=None if code == 0 else f"exit {code}; see {entry.folder / 'log'}")
            elif seen is None:
                fields.update(state="failed", finished_at=now, note=f"SLURM job {entry.slurm_job} ended without "
                              f"an exit status (cancelled or over its time limit); see {entry.folder / 'slurm.out'}")
            if fields:
                entry = update(entry.name, **fields)
        rows.append((entry, seen))
    return rows


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
        if entry.slurm_job is not None:
            _slurm("scancel", str(entry.slurm_job))
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
            "slurm_job": entry.slurm_job, "slurm": seen, "note": entry.note,
            "chunks": [[iso(start), iso(end)] for start, end in entry.slot.chunks] if entry.slot else [],
            "phase": chunk_phase(entry, now, entry.pause()),
        }
        for entry, seen in refresh(now)
    ]


def render_status(records: list[dict]) -> str:
    lines = []
    for row in records:
        seen = row["slurm"]
        slurm = "" if seen is None else f"  SLURM {row['slurm_job']} {seen['state']} ({seen['reason']}, " \
            f"start {seen['start']})"
        lines.append(
            f"{row['entry']:<14} {row['state']:<9} slot {str(row['slot_start'])[:19]:<19} "
            f"started {str(row['started'])[:19]:<19}{slurm}" + (f"  {row['phase']}" if row["phase"] else "")
            + (f"  {row['note']}" if row["note"] else "")
        )
    return "\n".join(lines) or "the queue is empty"
