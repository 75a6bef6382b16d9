"""`queue submit --slurm` against a real single-node SLURM cluster (.ci/start_slurm.sh starts one): the jobs pend
with reason BeginTime until their slots (or behind the job before them in their worker's lane), move when
re-planned, run in the order of their slots (not of their submission), each within the scheduler's tick of its slot
or of the job before it leaving, and their experiments come back to the project as DVC experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Optional

import pytest

from ..conftest import VENV_BIN
from .queue_project import make_project, trace
from .test_local import queue_state, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sbatch") is None, reason="SLURM is not installed (.ci/start_slurm.sh sets it up)"),
]
TICK = 5.0  # sched_interval and bf_interval are 1 s in .ci/start_slurm.sh; a job's shell takes a moment to begin


def squeue(job: int) -> tuple[str, str, str]:
    shown = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T|%r|%S"], capture_output=True, text=True)
    return tuple(shown.stdout.strip().split("|")) if shown.stdout.strip() else ("GONE", "", "")


def job_field(job: int, fields: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", str(job), "-o", fields], capture_output=True, text=True).stdout.strip()


def pends(job: int, reason: str) -> None:
    """Wait for the scheduler's next pass to give a pending job its reason (a released job shows None until then)."""
    wait_until(lambda: squeue(job)[:2] == ("PENDING", reason), 15, f"job {job} to pend with reason {reason}")


def job_began(job: int) -> float:
    """When SLURM started the job (whole seconds; it keeps ended jobs for MinJobAge)."""
    shown = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job), "-o", "%S"], capture_output=True, text=True)
    return datetime.strptime(shown.stdout.strip(), "%Y-%m-%dT%H:%M:%S").timestamp()


def left_slurm(job: int) -> Optional[float]:
    """When SLURM saw the job end (it keeps ended jobs for MinJobAge, 600 s in .ci/start_slurm.sh)."""
    shown = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job), "-o", "%e"], capture_output=True, text=True)
    try:
        return datetime.strptime(shown.stdout.strip(), "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


def test_jobs_pend_until_their_slots_then_run_in_slot_order_and_their_experiments_come_back(tmp_path):
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    now = time.time()
    project = make_project(tmp_path / "project", trace(now, 10, [400] * 14 + [100] * 12 + [400] * 48))
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    submit = [*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"]
    subprocess.run([*cli, "add", "-S", "train.epochs=1", "-n", "sweep", "--duration", "40s", "--slack", "8min"],
                   cwd=project, env=env, check=True)
    first = subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    sweep = queue_state(project)["sweep"]["slurm_jobs"][0]
    pends(sweep, "BeginTime")

    # A fresh forecast puts the trough 30 s later, and an urgent entry arrives that must run first in the trough:
    # submitting again re-plans. The earlier-submitted job moves behind the new one in the one worker's lane.
    (project / "trace.csv").write_text(trace(now, 10, [400] * 17 + [100] * 12 + [400] * 45))
    due = datetime.fromtimestamp(now - 60 + 170 + 55, timezone.utc).isoformat()
    subprocess.run([*cli, "add", "-S", "train.epochs=2", "-n", "urgent", "--duration", "40s", "--deadline", due],
                   cwd=project, env=env, check=True)
    again = subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr.count("moved to") == 1, again.stderr
    entries = queue_state(project)
    jobs = {name: entry["slurm_jobs"][0] for name, entry in entries.items()}
    assert jobs["sweep"] == sweep and jobs["urgent"] > sweep
    assert entries["urgent"]["slot"]["end"] <= entries["sweep"]["slot"]["start"] + 1e-6, entries
    for name, entry in entries.items():
        assert entry["slot"]["start"] >= now - 60 + 170 - 1.0, name  # in the new trough (to the second SLURM keeps)
        start = datetime.strptime(squeue(jobs[name])[2], "%Y-%m-%dT%H:%M:%S").timestamp()
        assert abs(start - entry["slot"]["start"]) <= 1.0, (name, start - entry["slot"]["start"])
        assert json.loads((project / ".dvc/tmp/carbon-pipe-queue/entries" / name / "slot.json").read_text())[
            "start"] == entry["slot"]["start"]
    # One lane: the same job name; the urgent job waits for its slot, the other for it (released, not held).
    assert job_field(jobs["urgent"], "%j") == job_field(sweep, "%j")
    pends(jobs["urgent"], "BeginTime")
    pends(sweep, "Dependency")
    assert f"afterany:{jobs['urgent']}" in job_field(sweep, "%E")
    # A submit killed while it held the pending jobs leaves them held: the next one releases them.
    subprocess.run(["scontrol", "hold", str(sweep)], check=True, capture_output=True)
    assert squeue(sweep)[1].startswith("JobHeld")
    released = subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True)
    assert released.returncode == 0, released.stderr
    pends(sweep, "Dependency")
    pends(jobs["urgent"], "BeginTime")

    # While the first runs, status reads its real start back from squeue.
    wait_until(lambda: squeue(jobs["urgent"])[0] == "RUNNING", 200, "the urgent job to run")
    status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
    row = next(row for row in json.loads(status.stdout) if row["entry"] == "urgent")
    assert row["slurm"]["state"] == "RUNNING", row
    assert row["started"].startswith(datetime.fromisoformat(row["slurm"]["start"]).astimezone(timezone.utc)
                                     .strftime("%Y-%m-%dT%H:%M:%S")), row

    wait_until(lambda: all(squeue(job)[0] == "GONE" for job in jobs.values()), 300, "both SLURM jobs to finish")
    status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    entries = queue_state(project)
    assert all(entry["state"] == "done" for entry in entries.values()), entries
    # In slot order, each within the scheduler's tick of its slot (SLURM keeps whole seconds), the second of the
    # first leaving SLURM should that be later than its slot (its job also pushes the experiment back).
    handover = left_slurm(jobs["urgent"])
    assert handover is not None and handover <= entries["sweep"]["started_at"] + 1.0, (handover, entries)
    for name, ready in (("urgent", entries["urgent"]["slot"]["start"]),
                        ("sweep", max(entries["sweep"]["slot"]["start"], handover))):
        assert -1.0 <= entries[name]["started_at"] - ready <= TICK, (name, entries[name]["started_at"] - ready)

    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=project,
                          capture_output=True, text=True).stdout.split()
    assert sorted(ref.rsplit("/", 1)[-1] for ref in refs) == ["sweep", "urgent"]
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, env=env, capture_output=True,
                                      text=True).stdout)
    names = {exp["name"] for commit in shown for exp in commit.get("experiments") or [] if exp.get("name")}
    assert names == {"sweep", "urgent"}


def test_an_interruptible_entry_runs_as_one_job_per_chunk_and_another_entry_takes_its_worker_in_the_pause(tmp_path):
    """One worker, three short troughs: the interruptible entry's two chunks are two SLURM jobs in the first and
    the last, the second waiting for the first to have ended well; its run hands the worker back at the first
    chunk's end (the job ends), the whole entry's job runs in the middle trough, and the second chunk's job resumes
    the run from its checkpoint. Never two at once; one experiment each comes back, the resumed one with all its
    work and its pause on record."""
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    from .test_local import experiment_metrics

    now = time.time()
    # As the local interruptible test: troughs at +50 (A), +110 (B, the cleanest) and +170 s (C) from now.
    values = [400] * 11 + [100] * 3 + [400] * 3 + [50] * 3 + [400] * 3 + [100] * 3 + [400] * 60
    project = make_project(tmp_path / "project", trace(now, 10, values), pausing=True)
    origin = int(now) - 60
    trough = {name: (origin + offset, origin + offset + 30) for name, offset in (("A", 110), ("B", 170), ("C", 230))}
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    for entry in (
        ["-S", "train.epochs=40", "-S", "scheduler.min_chunk=30s", "-n", "split", "--duration", "60s", "--power",
         "0.2", "--interruptible"],
        ["-S", "train.epochs=3", "-n", "whole", "--duration", "30s", "--power", "0.4"],
    ):
        subprocess.run([*cli, "add", *entry, "--slack", "5min"], cwd=project, env=env, check=True)
    submitted = subprocess.run([*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"], cwd=project, env=env,
                               capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    entries = queue_state(project)
    chunks = [tuple(chunk) for chunk in entries["split"]["slot"]["chunks"]]
    assert chunks == [pytest.approx(trough["A"], abs=0.01), pytest.approx(trough["C"], abs=0.01)]
    first, second = entries["split"]["slurm_jobs"]
    [whole] = entries["whole"]["slurm_jobs"]
    pends(first, "BeginTime")
    assert f"afterok:{first}" in job_field(second, "%E") and f"afterany:{whole}" in job_field(second, "%E")
    assert f"afterany:{first}" in job_field(whole, "%E")  # the one worker's lane: first, whole, second
    assert len({job_field(job, "%j") for job in (first, second, whole)}) == 1

    # Once the first chunk handed its worker back, a re-plan keeps the paused entry's next chunk where it was, and
    # it still waits for the whole entry's job planned before it in the lane.
    paused = project / ".dvc/tmp/carbon-pipe-queue/entries/split/paused"
    wait_until(lambda: paused.exists() and squeue(first)[0] not in ("RUNNING", "PENDING"), 200, "the hand-back")
    again = subprocess.run([*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"], cwd=project, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    replanned = queue_state(project)
    assert replanned["split"]["slurm_jobs"] == [first, second] and replanned["whole"]["slurm_jobs"] == [whole]
    assert [tuple(chunk) for chunk in replanned["split"]["slot"]["chunks"]] == chunks
    assert f"afterany:{whole}" in job_field(second, "%E")
    status = subprocess.run([*cli, "status"], cwd=project, env=env, capture_output=True, text=True)
    assert f"SLURM {second} PENDING" in status.stdout and "paused until" in status.stdout, status.stdout

    wait_until(lambda: all(squeue(job)[0] == "GONE" for job in (first, second, whole)), 400, "the three jobs to end")
    status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    entries = queue_state(project)
    assert {name: entry["state"] for name, entry in entries.items()} == {"split": "done", "whole": "done"}, entries

    launches = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert [launch["entry"] for launch in launches] == ["split", "whole", "split"]
    spans = [(launch["began"], launch["ended"]) for launch in launches]
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans  # never two at once
    assert trough["A"][0] <= spans[0][0] and spans[0][1] <= trough["A"][1] + 2.5  # SIGTERM at the chunk's end
    for job, slot in ((whole, trough["B"][0]), (second, trough["C"][0])):  # each job within the tick of its slot
        assert -1.0 <= job_began(job) - slot <= TICK, (job, job_began(job) - slot)
    assert trough["B"][0] <= spans[1][0] and trough["C"][0] <= spans[2][0]
    assert 0 < launches[0]["done"] < 40 and launches[-1]["done"] == 40  # resumed, not started again
    assert not (project / ".dvc/tmp/carbon-pipe-queue/entries/split/paused").exists()

    metrics = experiment_metrics(project, env, "metrics/optimized.json")
    scheduled = metrics["split"]["scheduler_metrics"]
    assert scheduled["clock"] == "real" and scheduled["planned_chunks"] == 2
    assert scheduled["paused_seconds"] == pytest.approx(trough["C"][0] - trough["A"][1], abs=TICK + 10)


def test_a_pending_interruptible_entry_is_submitted_again_when_a_re_plan_changes_its_chunks(tmp_path):
    """Its chunks may be more or fewer after a re-plan: its pending jobs are cancelled and its new chunks
    submitted, each after the one before it."""
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    now = time.time()
    split = [400] * 20 + [100] * 6 + [400] * 6 + [100] * 6 + [400] * 60  # two troughs, an hour-ish away in 10 s
    project = make_project(tmp_path / "project", trace(now, 10, split))
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    submit = [*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"]
    subprocess.run([*cli, "add", "-S", "scheduler.min_chunk=30s", "-n", "split", "--duration", "120s",
                    "--interruptible", "--slack", "10min"], cwd=project, env=env, check=True)
    try:
        assert subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True).returncode == 0
        before = queue_state(project)["split"]["slurm_jobs"]
        assert len(before) == 2 and all(squeue(job)[0] == "PENDING" for job in before)
        assert f"afterok:{before[0]}" in job_field(before[1], "%E")

        (project / "trace.csv").write_text(trace(now, 10, [400] * 20 + [100] * 12 + [400] * 66))  # one trough
        again = subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        entry = queue_state(project)["split"]
        [after] = entry["slurm_jobs"]
        assert entry["state"] == "started" and after not in before and len(entry["slot"]["chunks"]) == 1
        assert all(squeue(job)[0] in ("CANCELLED", "GONE") for job in before)
        pends(after, "BeginTime")
    finally:
        subprocess.run(["scancel", *map(str, queue_state(project)["split"]["slurm_jobs"])], capture_output=True)


def lane_jobs(project) -> set[int]:
    """The jobs SLURM holds (pending or running) in this project's lanes."""
    from carbon_pipe.queue.slurm import lane_name

    prefix = lane_name(project, 0)[:-1]
    shown = subprocess.run(["squeue", "-h", "-o", "%i|%j"], capture_output=True, text=True).stdout.split()
    return {int(job) for job, name in (line.split("|", 1) for line in shown) if name.startswith(prefix)}


def test_a_lane_waits_for_every_job_before_it_and_a_submit_cut_short_leaves_no_job_unknown(tmp_path):
    """One worker; an interruptible entry in troughs A and C, whole ones in B and D. A submit whose third sbatch
    SLURM refuses (a submit limit, say) has every job it did submit in the queue file; the next submit knows them
    all, and the last job in the lane waits for every one before it, not only the last (SLURM counts a cancelled
    job as done)."""
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    now = time.time()
    troughs = [400] * 36 + [100] * 3 + [400] * 3 + [50] * 3 + [400] * 3 + [100] * 3 + [400] * 3 + [80] * 3
    project = make_project(tmp_path / "project", trace(now, 10, troughs + [400] * 40))
    refusing = tmp_path / "refusing"
    refusing.mkdir()
    (refusing / "sbatch").write_text(  # SLURM's sbatch, refusing from the third call on
        f'#!/bin/sh\nn=$(cat {tmp_path}/calls 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/calls\n'
        f'[ "$n" -ge 2 ] && {{ echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1; }}\n'
        f'exec {shutil.which("sbatch")} "$@"\n')
    (refusing / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    for entry in (["-S", "scheduler.min_chunk=30s", "-n", "split", "--duration", "60s", "--power", "0.2",
                   "--interruptible"], ["-n", "w1", "--duration", "30s", "--power", "0.4"],
                  ["-n", "w2", "--duration", "30s", "--power", "0.3"]):
        subprocess.run([*cli, "add", *entry, "--slack", "15min"], cwd=project, env=env, check=True)
    submit = [*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"]
    try:
        cut = subprocess.run(submit, cwd=project, env={**env, "PATH": f"{refusing}{os.pathsep}{env['PATH']}"},
                             capture_output=True, text=True)
        assert cut.returncode != 0 and "QOSMaxSubmitJobPerUserLimit" in cut.stderr.strip().splitlines()[-1]
        recorded = {job for entry in queue_state(project).values() for job in entry["slurm_jobs"]}
        assert len(recorded) == 2 and recorded == lane_jobs(project)  # split's first chunk and w1, in slot order

        again = subprocess.run(submit, cwd=project, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        entries = queue_state(project)
        assert all(entry["state"] == "started" for entry in entries.values()), entries
        first, second = entries["split"]["slurm_jobs"]
        [w1], [w2] = entries["w1"]["slurm_jobs"], entries["w2"]["slurm_jobs"]
        assert {first, second, w1, w2} == lane_jobs(project)  # split submitted afresh, nothing left over
        starts = [entries["split"]["slot"]["chunks"][0][0], entries["w1"]["slot"]["start"],
                  entries["split"]["slot"]["chunks"][1][0], entries["w2"]["slot"]["start"]]
        assert starts == sorted(starts), entries  # the lane: split, w1, split, w2
        waits = job_field(w2, "%E")
        assert all(f"afterany:{job}" in waits for job in (first, w1, second)), waits
        assert f"afterok:{first}" in job_field(second, "%E")
    finally:
        subprocess.run(["scancel", *map(str, lane_jobs(project))], capture_output=True)


def test_a_running_interruptible_entry_short_of_a_later_chunks_job_gets_it_at_the_next_submit(tmp_path):
    """A submit cut short after two interruptible entries' first chunks were submitted, both since begun. The one
    whose job handed its worker back (its pause marked) is neither failed nor forgotten, and the next submit adds its
    missing chunk's job at its slot; the one whose job ended without handing back (killed, cancelled) is failed, and
    gets none."""
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    from carbon_pipe.queue.slurm import lane_name

    now = time.time()
    project = make_project(tmp_path / "project", trace(now, 10, [100] * 90))
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    entries = project / ".dvc/tmp/carbon-pipe-queue/entries"
    jobs = {}
    for lane, (name, hands_back) in enumerate((("split", True), ("dead", False))):
        subprocess.run([*cli, "add", "-n", name, "--duration", "60s", "--interruptible", "--slack", "10min"],
                       cwd=project, env=env, check=True)
        (entries / name).mkdir(parents=True)
        marker = f"; echo '{{\"resume_at\": {now + 300}}}' > {entries / name / 'paused'}" if hands_back else ""
        jobs[name] = int(subprocess.run(
            ["sbatch", "--parsable", f"--job-name={lane_name(project, lane)}", "--time=2", "--output=/dev/null",
             "--wrap", f"sleep 8{marker}"], capture_output=True, text=True, check=True).stdout.split(";")[0])
    queue_file = project / ".dvc/tmp/carbon-pipe-queue/queue.json"
    raw = json.loads(queue_file.read_text())
    chunks = [[now - 5, now + 25], [now + 300, now + 330]]
    for entry in raw["entries"]:
        entry.update(state="started", started_at=now - 5, slurm_jobs=[jobs[entry["name"]]], slot={
            "start": now - 5, "end": now + 330, "expected_g": 1.0, "planned_at": now - 10, "method": "milp",
            "chunks": chunks})
    queue_file.write_text(json.dumps(raw))
    try:
        wait_until(lambda: all(squeue(job)[0] == "RUNNING" for job in jobs.values()), 30, "the first chunks to run")
        status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert {row["entry"]: row["state"] for row in json.loads(status.stdout)} == {"split": "started",
                                                                                  "dead": "started"}
        wait_until(lambda: all(squeue(job)[0] != "RUNNING" for job in jobs.values()), 30, "the first chunks to end")
        status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
        assert {row["entry"]: row["state"] for row in json.loads(status.stdout)} == {"split": "started",
                                                                                  "dead": "failed"}, status.stdout

        added = subprocess.run([*cli, "submit", "--slurm", "--workers", "2", "--step", "10s"], cwd=project, env=env,
                               capture_output=True, text=True)
        assert added.returncode == 0, added.stderr
        state = queue_state(project)
        assert state["dead"]["slurm_jobs"] == [jobs["dead"]]
        assert state["split"]["slot"]["chunks"] == chunks and state["split"]["slurm_jobs"][0] == jobs["split"]
        [later] = state["split"]["slurm_jobs"][1:]
        assert "split chunk 2 of 2" in added.stderr
        pends(later, "BeginTime")  # (its start time shows once the scheduler has passed over it)
        start = datetime.strptime(squeue(later)[2], "%Y-%m-%dT%H:%M:%S").timestamp()
        assert abs(start - chunks[1][0]) <= 2.0  # SLURM keeps whole seconds, and takes the begin relative to now
    finally:
        subprocess.run(["scancel", *map(str, lane_jobs(project))], capture_output=True)
