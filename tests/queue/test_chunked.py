"""Interruptible queue entries: planned by the joint plan in chunks (none shorter than the entry's
scheduler.min_chunk, never more than K running), shown in the plan's table; `queue run` and SLURM refuse them in one
line naming the entry, before anything starts."""

from __future__ import annotations

import json

import pytest

from carbon_pipe.queue.store import read_queue
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


@pytest.mark.usefixtures("project")
@pytest.mark.parametrize("command", [["run"], ["submit", "--slurm"]])
def test_queue_run_and_slurm_refuse_an_interruptible_entry_naming_it_and_start_nothing(command):
    add("--name", "whole", "--duration", "1h", "--slack", "20h")
    add("--name", "split", "--duration", "3h", "--slack", "20h", "--interruptible")
    result = cli("queue", *command, "--workers", "1")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: entry split: interruptible entries are planned only (queue plan); neither queue run nor "
        "SLURM follows their chunks yet: cancel it, add it without --interruptible"
    ]
    assert [entry.state for entry in read_queue().entries] == ["queued", "queued"]
