"""What `backtest` reads and writes: only regular files are read (one line and exit 2 otherwise, before a byte), a
jobs row is named for what is wrong with it, the period is checked against the trace's span, and every CSV cell
from user text is inert in a spreadsheet."""

from __future__ import annotations

import csv
import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from carbon_pipe.artifacts import inert_cell, write_csv, write_rows
from carbon_pipe.cli import app

from .test_jobs import backtest, read_per_job, stamp, write_jobs, write_trace

TRACE_VALUES = [300.0, 280, 250, 260, 310, 330, 300, 270, 240, 230] * 5  # 50 h from 2024-01-01T00:00Z


@pytest.fixture
def trace(tmp_path):
    return write_trace(tmp_path / "trace.csv", TRACE_VALUES)


def one_line(result, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def special_files(tmp_path) -> dict:
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    return {"a folder": tmp_path, "a device": "/dev/zero", "a FIFO": fifo}


def test_only_a_regular_file_is_read_as_jobs_or_trace(tmp_path, trace):
    """A folder, /dev/zero (which never ends) and a FIFO (which blocks) are refused before they are opened."""
    for what, path in special_files(tmp_path).items():
        assert (
            one_line(backtest("--trace", trace, "--jobs", path))
            == f"carbon-pipe: error: {path}: not a jobs file ({what})"
        )
        assert one_line(backtest("--trace", path)) == f"carbon-pipe: error: {path}: not a trace file ({what})"
        forecasts = backtest("--trace", trace, "--forecasts", path)
        assert one_line(forecasts) == f"carbon-pipe: error: {path}: not a forecast file ({what})"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["a", "2263-01-01T00:00Z", "1h", "", "1h"]], "no job fits the data"),  # a real time, after the trace
        ([["a", "1600-01-01T00:00Z", "1h", "", "1h"]],
         "row 2: arrival '1600-01-01T00:00Z': is outside the years 1970 to 9999"),
        ([["a", stamp(1), "1h", "10000-01-01T00:00Z", ""]],
         "row 2: deadline '10000-01-01T00:00Z': not an ISO-8601 time"),
        ([["a", stamp(1), "1h", "", "1h", "x"]], "row 2: more fields than the header has columns"),
        ([["a", stamp(1), "1h", "", "1h"], ["b", stamp(2), "1h", "", "1h", "", "", "x"]],
         "row 3: more fields than the header has columns"),
    ],
)  # fmt: skip
def test_a_bad_jobs_row_is_named_without_a_traceback(tmp_path, trace, rows, message):
    jobs = write_jobs(tmp_path / "jobs.csv", rows, columns=("id", "arrival", "duration", "deadline", "slack"))
    assert message in one_line(backtest("--trace", trace, "--jobs", jobs))


def test_a_trace_or_forecast_row_with_an_extra_field_is_named(tmp_path, trace):
    extra = tmp_path / "extra.csv"
    extra.write_text("timestamp,carbon_intensity\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,2,7\n")
    assert one_line(backtest("--trace", extra)).endswith("extra.csv: row 3: more fields than the header has columns")
    extra.write_text("issued_at,target_time,carbon_intensity\n2024-01-01T00:00Z,2024-01-01T01:00Z,5,6\n")
    forecasts = backtest("--trace", trace, "--forecasts", extra, "--policy", "forecast-window")
    assert one_line(forecasts).endswith("extra.csv: row 2: more fields than the header has columns")


def test_a_column_named_twice_is_named(tmp_path, trace):
    jobs = write_jobs(
        tmp_path / "jobs.csv", [["a", "b", stamp(1), "1h", "1h"]], columns=("id", "id", "arrival", "duration", "slack")
    )
    assert one_line(backtest("--trace", trace, "--jobs", jobs)).endswith(
        "jobs.csv: column 'id' appears twice in the header"
    )


def test_a_bad_trace_exits_2_as_bad_input_does(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,carbon_intensity\nyesterday,1\n2024-01-01T01:00Z,2\n")
    assert one_line(backtest("--trace", bad)) == f"carbon-pipe: error: {bad}: row 2: cannot parse time 'yesterday'"


@pytest.mark.parametrize(
    "period, message",
    [
        (["--from", "2030-01-01T00:00Z"], "fewer than two trace points from 2030-01-01T00:00:00.000000Z to the end"),
        (["--until", "2023-01-01T00:00Z"], "fewer than two trace points from the start to 2023-01-01T00:00:00.000000Z"),
        (["--from", "2024-01-02T00:00Z", "--until", "2024-01-01T00:00Z"],
         "the end 2024-01-01T00:00:00.000000Z is not after the start 2024-01-02T00:00:00.000000Z"),
    ],
)  # fmt: skip
def test_a_period_outside_the_trace_says_what_the_trace_covers(trace, period, message):
    line = one_line(backtest("--trace", trace, "--policy", "now", *period))
    assert line.startswith(f"carbon-pipe: error: --from/--until: {message}")
    if "fewer" in message:
        assert line.endswith("the trace covers 2024-01-01T00:00:00.000000Z to 2024-01-03T02:00:00.000000Z")


def test_a_negative_noise_seed_is_refused(trace):
    assert one_line(backtest("--trace", trace, "--seed", "-1")) == "carbon-pipe: error: --seed: must not be negative"


FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1-2", "-2+3", "\tx", "\r=1"]


def test_job_ids_that_look_like_formulas_are_written_inert(tmp_path, trace):
    rows = [[job, stamp(j), "1h", "", "2h"] for j, job in enumerate([*FORMULAS, "plain"])]
    jobs = write_jobs(tmp_path / "jobs.csv", rows, columns=("id", "arrival", "duration", "deadline", "slack"))
    per_job = tmp_path / "per_job.csv"
    result = backtest("--trace", trace, "--jobs", jobs, "--per-job", per_job, "--policy", "now,oracle")
    assert result.exit_code == 0, result.output
    written = read_per_job(per_job)
    assert {row["id"] for row in written} == {*(f"'{job}" for job in FORMULAS), "plain"}
    assert all(float(row["emissions_kg"]) >= 0 for row in written)  # numbers stay numbers


def test_every_csv_writer_makes_text_cells_and_headers_inert_and_leaves_numbers(tmp_path):
    assert [inert_cell(value) for value in ("=1", "ok", -1.5, 3)] == ["'=1", "ok", -1.5, 3]
    write_rows(tmp_path / "rows.csv", ["id", "=x"], iter([("@a", -2.0), ("b", 1)]))
    with open(tmp_path / "rows.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [["id", "'=x"], ["'@a", "-2.0"], ["b", "1"]]
    write_csv(tmp_path / "frame.csv", pd.DataFrame({"+loss": [-0.5, 0.25], "note": ["=HYPERLINK(1)", "fine"]}))
    frame = pd.read_csv(tmp_path / "frame.csv")
    assert list(frame.columns) == ["'+loss", "note"] and list(frame["'+loss"]) == [-0.5, 0.25]
    assert list(frame["note"]) == ["'=HYPERLINK(1)", "fine"]


def test_an_output_that_is_not_a_file_is_refused_and_left_as_it_was(tmp_path, trace):
    """Writing renames a finished file over the target: over /dev/null that would replace the device itself. (Only
    targets inside tmp_path here: a regression must not replace a real device.)"""
    for what, path in special_files(tmp_path).items():
        if what == "a device":
            continue
        result = backtest("--trace", trace, "--policy", "now", "--per-job", path)
        assert one_line(result) == f"carbon-pipe: error: {path}: not a file to write the per-job results to ({what})"
        workload = CliRunner().invoke(
            app,
            [
                "workload",
                "periodic",
                "-o",
                str(path),
                "--from",
                "2024-01-01T00:00Z",
                "--until",
                "2024-01-02T00:00Z",
                "--duration",
                "1h",
                "--every",
                "1h",
            ],
        )
        assert one_line(workload) == f"carbon-pipe: error: {path}: not a file to write the jobs to ({what})"
    assert (tmp_path / "fifo.csv").is_fifo() and not list(tmp_path.glob(".*.tmp"))
