"""`carbon-pipe workload` refuses what would eat the machine or make nonsense, in one line naming the option, and
writes nothing; what it accepts keeps its promises (every arrival on the local clock inside its window)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.backtest.files import load_jobs
from carbon_pipe.cli import app

PERIOD = ["--from", "2025-01-01T00:00Z", "--until", "2025-02-01T00:00Z"]
ADHOC = ["--count", "10", "--durations", "1h-2h", "--deadline", "finish"]
BACKWARDS = ["--from", "2025-02-01T00:00Z", "--until", "2025-01-01T00:00Z"]
HOURLY = ["--duration", "1h", "--every", "1h"]


def workload(tmp_path, kind, *args):
    output = tmp_path / "jobs.csv"
    result = CliRunner().invoke(app, ["workload", kind, "-o", str(output), *map(str, args)])
    return result, output


@pytest.mark.parametrize(
    "kind, args, message",
    [
        ("periodic", ["--from", "1990-01-01T00:00Z", "--until", "2089-01-01T00:00Z", *HOURLY[:2], "--every", "1min"],
         "--every: 52070400 jobs, more than a workload holds (1,000,000)"),
        ("adhoc", [*PERIOD, "--count", "2000000000", "--durations", "1h-2h", "--deadline", "finish"],
         "--count: 2000000000 jobs, more than a workload holds (1,000,000)"),
        ("periodic", ["--from", "0001-01-01T00:00Z", "--until", "9999-01-01T00:00Z", *HOURLY[:2], "--at", "01:00"],
         "--from/--until: 3,651,694 days, longer than a workload spans (1,000,000 days)"),
        ("adhoc", [*PERIOD, *ADHOC, "--step", "0s"], "--step: must be positive"),
        ("adhoc", [*PERIOD, *ADHOC, "--seed", "-1"], "--seed: must be from 0 to 2**63 - 1, got -1"),
        ("adhoc", [*BACKWARDS, *ADHOC],
         "--from/--until: the period is empty: --until must come after --from"),
        ("periodic", [*BACKWARDS, *HOURLY],
         "--from/--until: the period is empty"),
        ("adhoc", [*PERIOD, "--count", "10", "--durations", "1h-2h", "--deadline", "next workday 09:00",
                   "--work-hours", "17:00-09:00"], "--work-hours: '17:00-09:00' ends before it starts"),
        ("adhoc", [*PERIOD, *ADHOC, "--arrivals", "17:00-09:00"], "--arrivals: '17:00-09:00' ends before it starts"),
        ("adhoc", [*PERIOD, "--count", "10", "--durations", "2h-1h", "--deadline", "finish"],
         "--durations: need a positive shortest duration, at most the longest"),
        ("adhoc", [*PERIOD, *ADHOC, "--grace", "87600000h"],
         "--from/--until: job 0's deadline falls outside the years 1970 to 9999"),
        ("periodic", [*PERIOD, "--duration", "1h", "--at", "01:00", "--before", "87600000h"],
         "--from/--until: job 0's arrival falls outside the years 1970 to 9999"),
        ("adhoc", ["--from", "9999-12-30T00:00Z", "--until", "9999-12-31T23:00Z", "--count", "3", "--durations", "1h",
                   "--deadline", "next workday 09:00", "--days", "all"],
         "--from/--until: jobs would fall after the year 9999"),
    ],
)  # fmt: skip
def test_a_workload_too_large_or_malformed_is_one_line_naming_the_option(tmp_path, kind, args, message):
    started = time.monotonic()
    result, output = workload(tmp_path, kind, *args)
    assert result.exit_code == 2 and result.stderr.startswith(f"carbon-pipe: error: {message}"), result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    assert not output.exists() and not list(tmp_path.glob(".*.tmp"))
    assert time.monotonic() - started < 30  # refused before any of it is made


def test_durations_over_a_century_in_seconds_are_drawn_without_listing_them(tmp_path):
    """1 s to 100 years in steps of 1 s: 3.15e9 choices, drawn by index (a list of them would take 25 GiB)."""
    result, output = workload(tmp_path, "adhoc", *PERIOD, "--count", "200", "--durations", "1s-876000h", "--step", "1s",
                              "--deadline", "finish")  # fmt: skip
    assert result.exit_code == 0, result.output
    durations = load_jobs(output).duration
    assert durations.min() >= 1 and durations.max() <= 876000 * 3600 and np.all(durations == np.round(durations))
    assert durations.max() > 100 * 3600  # spread over the range, not stuck at its start


def local(table, zone: str) -> list[datetime]:
    return [datetime.fromtimestamp(t, ZoneInfo(zone)) for t in table.arrival]


def test_ad_hoc_arrivals_never_fall_into_the_hour_the_clocks_skip(tmp_path):
    """Berlin skips 02:00-03:00 on 2025-03-30: arrivals from 01:00 to 03:00 that day are 01:00, 01:30 or 03:00
    local, never a 02:30 that the calendar turns into 03:30, outside the window."""
    result, output = workload(
        tmp_path, "adhoc", "--from", "2025-03-29T00:00+01:00", "--until", "2025-04-01T00:00+02:00", "--timezone",
        "Europe/Berlin", "--days", "all", "--arrivals", "01:00-03:00", "--step", "30min", "--count", "300",
        "--durations", "30min", "--deadline", "finish",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    times = {(m.day, m.strftime("%H:%M")) for m in local(load_jobs(output), "Europe/Berlin")}
    assert {hhmm for day, hhmm in times if day == 30} == {"01:00", "01:30", "03:00"}
    assert {hhmm for day, hhmm in times if day != 30} == {"01:00", "01:30", "02:00", "02:30", "03:00"}


def test_a_daily_job_at_a_skipped_time_runs_when_the_clocks_jump(tmp_path):
    """As cron: a nightly 02:30 job runs at 03:00 on the night the clocks skip 02:00-03:00, not at 03:30."""
    result, output = workload(
        tmp_path, "periodic", "--from", "2025-03-29T00:00+01:00", "--until", "2025-04-01T00:00+02:00", "--timezone",
        "Europe/Berlin", "--at", "02:30", "--duration", "30min",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    nightly = [m.strftime("%d %H:%M") for m in local(load_jobs(output), "Europe/Berlin")]
    assert nightly == ["29 02:30", "30 03:00", "31 02:30"]


@pytest.mark.slow
def test_a_workload_stopped_while_it_writes_leaves_no_temporary_file(tmp_path):
    """SIGTERM while the CSV is being written: the command ends with 143 and removes its hidden temporary file; the
    earlier file stays as it was."""
    output = tmp_path / "jobs.csv"
    output.write_text("earlier\n")
    command = [sys.executable, "-m", "carbon_pipe.cli", "workload", "periodic", "-o", str(output), "--from",
               "2024-01-01T00:00Z", "--until", "2025-10-01T00:00Z", "--duration", "1h", "--every", "1min"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".jobs.csv.*.tmp")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGSTOP)  # held mid-write, so the SIGTERM lands there however fast the machine writes
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr and sorted(path.name for path in tmp_path.iterdir()) == ["jobs.csv"]
    # Python runs the handler between bytecodes: a signal that lands in the last rows' C-level write is acted on
    # only once the file is complete, so the command may also end having written it whole; never half of it.
    if process.returncode == 0:
        assert output.read_text().count("\n") == 920_161, stderr
    else:
        assert process.returncode == 143, stderr
        assert "stopped by SIGTERM; no file was written (an earlier one is kept)" in stderr
        assert output.read_text() == "earlier\n"
