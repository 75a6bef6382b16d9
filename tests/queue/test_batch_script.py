"""The batch script of an interruptible entry's chunk, run by sh as SLURM would, with `dvc` standing in as a script
that does what the run would (hand back: mark the pause and fail; finish; fail): a chunk that handed back ends its
job well and leaves the entry open for the next chunk's job, which ends the pause; the last chunk records the
entry's exit status and log; a chunk's job for an entry already ended runs nothing. The whole flow against real
SLURM, DVC and carbon-pipe is tests/queue/test_slurm.py's."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from carbon_pipe.queue.slurm import batch_script
from carbon_pipe.queue.store import Entry, Slot

FAKE_DVC = """#!/bin/sh
echo "$*" >> "$FAKE_CALLS"
[ "$1 $2" = "exp push" ] && exit 0
echo "stage output" >&2
case "$FAKE_RUN" in
  hand-back) echo '{"resume_at": 1, "held_until": null}' > "$FAKE_PAUSE"; exit 1 ;;
  finish) exit 0 ;;
  *) exit 3 ;;
esac
"""


@pytest.fixture
def chunk_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dvc").write_text(FAKE_DVC)
    (bin_dir / "dvc").chmod(stat.S_IRWXU)
    entry = Entry(name="split", overrides={"train.epochs": "4"}, arrival=0, deadline=9000, duration=600,
                  duration_basis="given", power_kw=0.1, power_basis="given", chunk_floor=60,
                  slot=Slot(start=100, end=900, expected_g=1, planned_at=0, method="milp",
                            chunks=[(100, 300), (700, 900)]))
    entry.folder.mkdir(parents=True)
    (entry.folder / "slot.json").write_text("{}")
    work = tmp_path / "work"
    work.mkdir()
    calls = tmp_path / "calls"

    def run(chunk: int, outcome: str) -> int:
        script = entry.folder / f"job-{chunk}.sh"
        script.write_text(batch_script(entry, work, chunk, 2))
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_RUN": outcome,
               "FAKE_CALLS": str(calls), "FAKE_PAUSE": str(entry.pause_file)}
        return subprocess.run(["sh", str(script)], env=env, capture_output=True).returncode

    run.entry, run.calls = entry, calls  # type: ignore[attr-defined]
    return run


def runs(calls: Path) -> int:
    return sum(line.startswith("exp run -n split") for line in calls.read_text().splitlines()) if calls.exists() else 0


def test_a_chunk_that_hands_back_ends_its_job_well_and_the_next_chunk_finishes_the_entry(chunk_job):
    folder: Path = chunk_job.entry.folder
    assert chunk_job(1, "hand-back") == 0  # SLURM's afterok lets the next chunk's job begin
    assert chunk_job.entry.pause_file.exists() and not (folder / "exit").exists()
    assert (folder / "chunk-1" / "exit").read_text().strip() != "0" and (folder / "chunk-1" / "began").exists()
    assert chunk_job(2, "finish") == 0
    assert (folder / "exit").read_text().strip() == "0" and "stage output" in (folder / "log").read_text()
    assert not chunk_job.entry.pause_file.exists()  # its job ended the pause as it began
    assert runs(chunk_job.calls) == 2 and "exp push --no-cache origin split" in chunk_job.calls.read_text()


def test_a_chunks_job_for_an_entry_that_already_ended_runs_nothing(chunk_job):
    assert chunk_job(1, "finish") == 0  # the work took less than planned: done in the first chunk
    assert chunk_job(2, "fail") == 0 and runs(chunk_job.calls) == 1
    assert (chunk_job.entry.folder / "exit").read_text().strip() == "0"


def test_a_failed_chunk_records_the_entrys_failure_and_ends_its_job_badly(chunk_job):
    assert chunk_job(1, "fail") == 3  # SLURM cancels the chunks after it (afterok, --kill-on-invalid-dep)
    assert (chunk_job.entry.folder / "exit").read_text().strip() == "3"
    assert "stage output" in (chunk_job.entry.folder / "log").read_text()


def test_the_last_chunk_cannot_hand_back_there_being_no_job_to_resume_it(chunk_job):
    assert chunk_job(2, "hand-back") == 1
    assert (chunk_job.entry.folder / "exit").read_text().strip() == "1"
