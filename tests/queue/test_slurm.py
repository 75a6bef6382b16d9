"""`queue submit --slurm` against a real single-node SLURM cluster (.ci/start_slurm.sh starts one): the jobs pend
with reason BeginTime until their slots (or behind the job before them in their worker's lane), start there within
the scheduler's tick, move when re-planned, and their experiments come back to the project as DVC experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from ..conftest import VENV_BIN
from .queue_project import make_project, trace
from .test_local import queue_state, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sbatch") is None, reason="SLURM is not installed (.ci/start_slurm.sh sets it up)"),
]
TICK = 5.0  # sched_interval and bf_interval are 1 s in .ci/start_slurm.sh; a job's shell takes a moment to begin
LANE_HANDOVER = 120.0  # a job behind another in its lane: the one before it leaving SLURM, then a tick


def squeue(job: int) -> tuple[str, str, str]:
    shown = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T|%r|%S"], capture_output=True, text=True)
    return tuple(shown.stdout.strip().split("|")) if shown.stdout.strip() else ("GONE", "", "")


def job_field(job: int, fields: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", str(job), "-o", fields], capture_output=True, text=True).stdout.strip()


def test_jobs_pend_until_their_slots_then_run_and_their_experiments_come_back(tmp_path):
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.fail("sbatch is installed but no controller answers: run .ci/start_slurm.sh first")
    now = time.time()
    project = make_project(tmp_path / "project", trace(now, 10, [400] * 14 + [100] * 12 + [400] * 48))
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "QUEUE_TEST_LOG": str(tmp_path / "log")}
    cli = [sys.executable, "-m", "carbon_pipe.cli", "queue"]
    subprocess.run([*cli, "add", "-S", "train.epochs=1,2", "-n", "s", "--duration", "30s", "--slack", "8min"],
                   cwd=project, env=env, check=True)
    submitted = subprocess.run([*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"], cwd=project, env=env,
                               capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    entries = queue_state(project)
    jobs = {name: entry["slurm_job"] for name, entry in entries.items()}
    # SLURM knows the one worker: both jobs carry its lane's name with --dependency=singleton. The first waits for
    # its begin time; the second, behind it in the lane, for the first (SLURM tests dependencies first).
    lanes = {name: job_field(job, "%j|%E") for name, job in jobs.items()}
    assert len({lane.split("|")[0] for lane in lanes.values()}) == 1, lanes
    for rank, (name, job) in enumerate(sorted(jobs.items(), key=lambda item: item[1])):
        state, reason, _ = squeue(job)
        assert (state, reason) == ("PENDING", "BeginTime" if rank == 0 else "Dependency"), (name, state, reason)
        assert rank == 0 or "singleton" in lanes[name], lanes

    # A fresh forecast puts the trough 30 s later: submitting again re-plans and moves the pending jobs there.
    (project / "trace.csv").write_text(trace(now, 10, [400] * 17 + [100] * 12 + [400] * 45))
    again = subprocess.run([*cli, "submit", "--slurm", "--workers", "1", "--step", "10s"], cwd=project, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr.count("moved to") == 2, again.stderr
    entries = queue_state(project)
    assert {name: entry["slurm_job"] for name, entry in entries.items()} == jobs
    for name, entry in entries.items():
        assert entry["slot"]["start"] >= now - 60 + 170 - 1.0, name  # in the new trough (to the second SLURM keeps)
        start = datetime.strptime(squeue(jobs[name])[2], "%Y-%m-%dT%H:%M:%S").timestamp()
        assert abs(start - entry["slot"]["start"]) <= 1.0, (name, start - entry["slot"]["start"])
        assert json.loads((project / ".dvc/tmp/carbon-pipe-queue/entries" / name / "slot.json").read_text())[
            "start"] == entry["slot"]["start"]

    # While the first runs, status reads its real start back from squeue.
    first = min(entries, key=lambda name: entries[name]["slot"]["start"])
    wait_until(lambda: squeue(jobs[first])[0] == "RUNNING", 200, "the first job to run")
    status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
    row = next(row for row in json.loads(status.stdout) if row["entry"] == first)
    assert row["slurm"]["state"] == "RUNNING", row
    assert row["started"].startswith(datetime.fromisoformat(row["slurm"]["start"]).astimezone(timezone.utc)
                                     .strftime("%Y-%m-%dT%H:%M:%S")), row

    wait_until(lambda: all(squeue(job)[0] == "GONE" for job in jobs.values()), 300, "both SLURM jobs to finish")
    status = subprocess.run([*cli, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    entries = queue_state(project)
    in_lane = sorted(entries.items(), key=lambda item: item[1]["started_at"])  # the order SLURM ran them
    for index, (name, entry) in enumerate(in_lane):
        assert entry["state"] == "done", (name, entry["note"])
        # The first to run began at its slot (SLURM keeps whole seconds). The next waits for it to leave SLURM
        # (singleton): its experiment's end is recorded before the job's last steps (dvc exp push) finish, and the
        # lane keeps SLURM's submission order even where a re-plan gave the later-submitted entry the earlier slot,
        # so it begins within LANE_HANDOVER of its slot.
        late = entry["started_at"] - entry["slot"]["start"]
        assert -1.0 <= late <= (TICK if index == 0 else LANE_HANDOVER), (name, late)
    spans = sorted((entry["started_at"], entry["finished_at"]) for entry in entries.values())
    assert spans[0][1] <= spans[1][0] + 1.0  # one worker: the second began when the first had ended

    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=project,
                          capture_output=True, text=True).stdout.split()
    assert sorted(ref.rsplit("/", 1)[-1] for ref in refs) == ["s-1", "s-2"]
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, env=env, capture_output=True,
                                      text=True).stdout)
    names = {exp["name"] for commit in shown for exp in commit.get("experiments") or [] if exp.get("name")}
    assert names == {"s-1", "s-2"}
