"""What `queue submit --slurm` and `queue status` leave alone, and what they refuse rather than guess: an entry
`queue run` started here is not handed to SLURM; with SLURM's commands missing, a queue with SLURM jobs is one line,
and none of its entries is recorded as ended."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from carbon_pipe.queue.store import QUEUE_FILE, read_queue

from .queue_project import trace
from .test_queue import cli, project  # noqa: F401  (project: the fixture)


def started(**fields) -> None:
    """The one queued entry, as started (by `queue run`, or with `fields` by SLURM) a minute ago."""
    now = time.time()
    raw = json.loads(QUEUE_FILE.read_text())
    raw["entries"][0].update(state="started", started_at=now - 60, slot={
        "start": now - 60, "end": now + 3540, "expected_g": 1.0, "planned_at": now - 70, "method": "milp"}, **fields)
    QUEUE_FILE.write_text(json.dumps(raw))


@pytest.mark.usefixtures("project")
def test_an_entry_queue_run_started_here_is_left_to_it_by_submit_slurm():
    Path("trace.csv").write_text(trace(time.time(), 600, [300 - 5 * k for k in range(40)]))
    assert cli("queue", "add", "--name", "here", "--duration", "1h", "--slack", "5h").exit_code == 0
    started()
    before = read_queue()
    result = cli("queue", "submit", "--slurm", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert read_queue() == before and read_queue().named("here").slurm_jobs == []


@pytest.mark.usefixtures("project")
def test_without_squeue_a_queue_with_slurm_jobs_is_one_line_and_nothing_is_recorded_ended(monkeypatch):
    assert cli("queue", "add", "--name", "there", "--duration", "1h", "--slack", "5h").exit_code == 0
    started(slurm_jobs=[4242])
    before = QUEUE_FILE.read_text()
    monkeypatch.setenv("PATH", str(Path("no-slurm-here").resolve()))
    result = cli("queue", "status")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "squeue: not found" in lines[0], result.output
    assert QUEUE_FILE.read_text() == before
