"""The one CSV reader: every way a file can be unreadable is one line naming the file (and the row at fault), as
the error the caller names, with what to run again after it."""

from __future__ import annotations

import os

import pytest

from carbon_pipe.artifacts import read_csv
from carbon_pipe.errors import ArtifactError, UsageError


def test_a_readable_file_is_a_table_with_the_options_given(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("id,arrival\n007, 2024-01-01T00:00Z\n")
    frame = read_csv(path, "jobs", dtype=str, skipinitialspace=True)
    assert list(frame.columns) == ["id", "arrival"] and frame["id"].tolist() == ["007"]
    assert frame["arrival"].tolist() == ["2024-01-01T00:00Z"]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"a,b\n1,2\n3,4,5\n", "row 3: more fields than the header has columns"),
        (b"a,b\n1,2,3\n", "row 2: more fields than the header has columns"),
        (b"", "not a readable CSV (No columns to parse from file)"),
        (b"a,b\n\xff\xfe,1\n", "not a readable CSV ("),
    ],
)
def test_an_unreadable_file_is_one_line_naming_it_and_the_row(tmp_path, content, problem):
    path = tmp_path / "trace.csv"
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        read_csv(path, "trace")
    assert str(caught.value).startswith(f"{path}: {problem}") and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_missing_file_or_a_fifo_is_refused_before_it_is_opened(tmp_path):
    with pytest.raises(UsageError, match=r"absent\.csv: no such forecast file$"):
        read_csv(tmp_path / "absent.csv", "forecast")
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"fifo\.csv: not a trace file \(a FIFO\)$"):
        read_csv(fifo, "trace")  # a blocking open would hang here


def test_a_file_a_stage_wrote_fails_as_an_artifact_with_what_to_run_again(tmp_path):
    path = tmp_path / "intensity.csv"
    path.write_text("timestamp,carbon_intensity\n1,2,3\n")
    with pytest.raises(ArtifactError) as caught:
        read_csv(path, "intensity", error=ArtifactError, fix="run wait-for-window again")
    assert str(caught.value) == (
        f"{path}: row 2: more fields than the header has columns: run wait-for-window again"
    )
    assert caught.value.exit_code == 1
    with pytest.raises(ArtifactError, match=r"absent\.csv: no such intensity file: run wait-for-window again$"):
        read_csv(tmp_path / "absent.csv", "intensity", error=ArtifactError, fix="run wait-for-window again")
