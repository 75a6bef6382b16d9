"""Segments and chunks: the chunks as they ran and the pauses between them, from the segment log; and a live plan's
pauses: a signal during a pause is recorded beside the checkpoint as a typed record, read back on resume, and a
damaged record is one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbon_pipe.errors import ArtifactError, TrainingStopped
from carbon_pipe.training.run_summary import ChunkNote, PauseInterruption, SegmentEntry
from carbon_pipe.training.segments import INTERRUPTIONS, TRAIN_MAPPING, Checkpointed, chunk_metrics, follow_live_plan

WAITED = {  # what the re-planner reports when SIGTERM stopped its pause
    "replans": 2,
    "replan_failures": ["2025-01-15T18:30:00.000000Z: uk: HTTP 503; kept the plan made before"],
    "at": "2025-01-15T19:00:00.000000Z",
    "paused_since": "2025-01-15T18:00:00.000000Z",
    "signal": "SIGTERM",
    "planned_start": "2025-01-15T22:00:00.000000Z",
}


def never_trains(segment):
    raise AssertionError("a run stopped in its pause must not train")


def follow(resume: Path, replan) -> None:
    follow_live_plan(
        chunks=[],
        total_steps=10,
        run_segment=never_trains,
        progress=lambda: Checkpointed(step=4, seconds=2.0, chunk=1),
        replan=replan,
        now=lambda: 0.0,
        say=lambda line: None,
        name="optimized",
        resume=resume,
    )


def test_a_signal_during_a_pause_is_recorded_beside_the_checkpoint_after_those_before(tmp_path):
    earlier = PauseInterruption.model_validate({**WAITED, "signal": "SIGINT", "after_step": 2})
    (tmp_path / INTERRUPTIONS).write_text(json.dumps([earlier.to_json()]))
    with pytest.raises(TrainingStopped) as stopped:
        follow(tmp_path, lambda step, seconds, previous: ([], dict(WAITED)))
    assert stopped.value.exit_code == 143 and "stopped by SIGTERM while paused after step 4" in str(stopped.value)
    recorded = json.loads((tmp_path / INTERRUPTIONS).read_text())
    assert recorded == [earlier.to_json(), {**WAITED, "after_step": 4}]  # the keys as they were, in their order
    assert list(recorded[1]) == [*WAITED, "after_step"]


def test_chunks_as_run_span_their_segments_and_the_pauses_lie_between_them():
    def entry(segment, chunk, start, first, end, last):
        note = ChunkNote(chunk=chunk, planned_start=f"2025-01-15T{chunk + 17}:00:00.000000Z",
                         planned_end=f"2025-01-15T{chunk + 17}:30:00.000000Z", until_step=None)
        return SegmentEntry.of(segment, note, f"2025-01-15T{start}Z", first, f"2025-01-15T{end}Z", last)

    log = [  # chunk 2 stopped by a signal and resumed: two segments
        SegmentEntry.of(0, ChunkNote(), "2025-01-15T17:50:00.000000Z", 0, "2025-01-15T17:59:00.000000Z", 0),
        entry(1, 1, "18:00:00.000000", 0, "18:20:00.000000", 5),
        entry(2, 2, "19:00:00.000000", 5, "19:05:00.000000", 7),
        entry(3, 2, "19:06:00.000000", 7, "19:10:00.500000", 10),
    ]
    metrics = chunk_metrics(log, 2, "simulated", TRAIN_MAPPING)
    first, second = metrics["chunks"]
    assert (second.segments, second.start, second.end, second.first_step, second.steps) == (
        2, "2025-01-15T19:00:00.000000Z", "2025-01-15T19:10:00.500000Z", 5, 5
    )
    assert list(first.to_json()) == [
        "chunk", "planned_start", "planned_end", "until_step", "start", "first_step", "segments", "end", "last_step",
        "steps",
    ]
    (pause,) = metrics["pauses"]
    assert pause.to_json() == {
        "after_chunk": 1, "start": "2025-01-15T18:20:00.000000Z", "end": "2025-01-15T19:00:00.000000Z",
        "seconds": 2400.0, "slept": False,
    }
    assert metrics["paused_seconds"] == 2400.0 and metrics["chunk_mapping"] == "step-shares"


@pytest.mark.parametrize(
    "content, expected",
    [
        ('[{"signal": "SIG', "is not valid JSON"),
        (json.dumps({**WAITED, "after_step": 4}), "not the pause interruptions carbon-pipe wrote"),
        (json.dumps([{**WAITED, "at": "soon", "after_step": 4}]), "0.at is 'soon'"),
        (json.dumps([{**WAITED, "after_step": "4"}]), "0.after_step is '4', not a whole number"),
        (json.dumps([WAITED]), "0.after_step is missing"),
    ],
    ids=["cut-short", "not-a-list", "not-a-time", "step-as-text", "no-step"],
)
def test_a_damaged_interruption_record_is_one_line_naming_the_file_before_anything_runs(tmp_path, content, expected):
    (tmp_path / INTERRUPTIONS).write_text(content)

    def replan(step, seconds, previous):
        raise AssertionError("read before the first re-plan")

    with pytest.raises(ArtifactError) as refused:
        follow(tmp_path, replan)
    (line,) = str(refused.value).splitlines()
    assert str(tmp_path / INTERRUPTIONS) in line and expected in line, line
    assert (tmp_path / INTERRUPTIONS).read_text() == content  # kept for a look
