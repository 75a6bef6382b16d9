"""A command run's progress (progress.json in its resume folder): read back as saved, another run's ignored, and a
damaged one a line naming the file and what to delete."""

from __future__ import annotations

import json

import pytest

from carbon_pipe.command.progress import PROGRESS, Progress
from carbon_pipe.errors import ArtifactError
from carbon_pipe.training.run_summary import ChunkNote, EscapedProcess, Launch, SegmentEntry

LAUNCH = Launch(
    segment=0, seconds=2.5, cpu_seconds=1.25, exit_code=143, signal=None, stopped_for_pause=True,
    killed_after_grace=False, passed_on=None, escaped_ended=[EscapedProcess(pid=4242, name="daemon")],
)
NOTE = ChunkNote(
    chunk=1, planned_start="2025-01-15T18:00:00.000000Z", planned_end="2025-01-15T18:00:04.000000Z", until_step=2
)
ENTRY = SegmentEntry.of(0, NOTE, "2025-01-15T18:00:00.000000Z", 0, "2025-01-15T18:00:03.500000Z", 3)
SAVED = Progress("abc", 3.5, 10.0, [ENTRY], [LAUNCH], 12.0)


def test_progress_is_read_back_as_saved_and_another_runs_is_a_fresh_start(tmp_path):
    SAVED.save(tmp_path)
    assert Progress.read(tmp_path, "abc") == SAVED
    assert Progress.read(tmp_path, "other") == Progress("other")
    assert Progress.read(tmp_path / "none", "abc") == Progress("abc")
    (launch,) = json.loads((tmp_path / PROGRESS).read_text())["endings"]
    assert launch == LAUNCH.to_json() and list(launch) == list(Launch.model_fields)  # the summary's keys, in order
    (entry,) = json.loads((tmp_path / PROGRESS).read_text())["segment_log"]
    assert list(entry) == [
        "segment", "chunk", "planned_start", "planned_end", "until_step", "clock_start", "first_step", "clock_end",
        "last_step",
    ]  # as the summary's segment log holds it


@pytest.mark.parametrize("content, says", [
    ({"fingerprint": "abc", "seconds": "lots"}, "seconds is 'lots', not a number"),
    ([1], "a JSON list, not an object"),
    ({"fingerprint": "abc", "endings": [{**LAUNCH.to_json(), "exit_code": "143"}]},
     "endings.0.exit_code is '143', not a whole number"),
    ({"fingerprint": "abc", "endings": [{**LAUNCH.to_json(), "escaped_ended": [{"pid": 1}]}]},
     "endings.0.escaped_ended.0.name is missing"),
])
def test_damaged_progress_is_one_line_naming_the_file(tmp_path, content, says):
    (tmp_path / PROGRESS).write_text(json.dumps(content))
    with pytest.raises(ArtifactError) as raised:
        Progress.read(tmp_path, "abc")
    assert str(raised.value).startswith(f"{tmp_path / PROGRESS}: not a run's progress carbon-pipe wrote (")
    assert says in str(raised.value) and f"delete {tmp_path} to start the run over" in str(raised.value)
