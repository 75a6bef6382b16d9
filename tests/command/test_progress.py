"""A command run's progress (progress.json in its resume folder): read back as saved, another run's ignored, and a
damaged one a line naming the file and what to delete."""

from __future__ import annotations

import json

import pytest

from carbon_pipe.command.progress import PROGRESS, Progress
from carbon_pipe.errors import ArtifactError

SAVED = Progress("abc", 3.5, 10.0, [{"segment": 0, "chunk": 1}], [{"status": 0}], 12.0)


def test_progress_is_read_back_as_saved_and_another_runs_is_a_fresh_start(tmp_path):
    SAVED.save(tmp_path)
    assert Progress.read(tmp_path, "abc") == SAVED
    assert Progress.read(tmp_path, "other") == Progress("other")
    assert Progress.read(tmp_path / "none", "abc") == Progress("abc")


@pytest.mark.parametrize("content, says", [
    ({"fingerprint": "abc", "seconds": "lots"}, "seconds is 'lots', not a number"),
    ([1], "a JSON list, not an object"),
])
def test_damaged_progress_is_one_line_naming_the_file(tmp_path, content, says):
    (tmp_path / PROGRESS).write_text(json.dumps(content))
    with pytest.raises(ArtifactError) as raised:
        Progress.read(tmp_path, "abc")
    assert str(raised.value).startswith(f"{tmp_path / PROGRESS}: not a run's progress carbon-pipe wrote (")
    assert says in str(raised.value) and f"delete {tmp_path} to start the run over" in str(raised.value)
