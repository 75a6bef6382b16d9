"""Backtest faults: short traces, values that would overflow, and inputs too large for memory, each one line."""

import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from carbon_pipe.backtest.grid import to_grid
from carbon_pipe.errors import UsageError
from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.timeutil import parse_instant

from ..conftest import CARBON_DATA
from .test_jobs import backtest, write_trace

START = parse_instant("2024-01-01T00:00:00Z")


def test_short_trace_falls_back_to_the_forecast_and_says_so(tmp_path):
    trace = write_trace(
        tmp_path / "trace.csv", [300.0, 280, 250, 260, 310, 330, 300, 270, 240, 230]
    )  # 10 h: under 12 h
    result = backtest(
        "--trace", trace, "--duration", "2h", "--slack", "3h", "--every", "1h", "--policy", "rolling,interruptible"
    )
    assert result.exit_code == 0, result.output
    assert (
        "note: nowcast: 8 decisions had less than a day of history (or 12 h of deviations) and used the forecast "
        "as it is" in result.stdout
    )


def test_a_period_of_one_job_on_a_real_trace_is_scored_with_no_notes_and_within_the_oracle():
    path = CARBON_DATA / "lets-wait-awhile" / "ger_ci.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    args = [
        "--from",
        "2020-01-06T09:00Z",
        "--until",
        "2020-01-06T16:30Z",
        "--duration",
        "4h",
        "--slack",
        "3h30min",
        "--every",
        "4h",
    ]
    result = backtest("--trace", path, *args, "--policy", "rolling,oracle", "--json")
    assert result.exit_code == 0, result.output
    rolling, oracle = json.loads(result.stdout)
    assert rolling["jobs"] == 1 and rolling["notes"] == [] and 0 <= rolling["savings_pct"] <= oracle["savings_pct"]


def test_values_that_would_overflow_are_one_clear_line(tmp_path):
    values = [300.0] * 48
    values[10] = values[30] = 1e308
    result = backtest("--trace", write_trace(tmp_path / "trace.csv", values), "--policy", "now,oracle")
    assert result.exit_code == 2 and result.stdout == ""
    assert "row 12: carbon_intensity is 1e+308, not an intensity" in result.stderr  # the trace loader refuses it
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_series_whose_sums_would_overflow_is_refused_by_the_grid_too():
    """A series built in code (not read by the loader) meets the backtest's own guard."""
    values = np.full(48, 300.0)
    values[10] = values[30] = 1e308
    series = IntensitySeries(START + 3600.0 * np.arange(49), values, np.zeros(48, dtype=bool), "test", "XX")
    with pytest.raises(
        UsageError, match=r"^XX: intensity 1e\+308 g/kWh at 2024-01-01T10:00:00.000000Z is beyond any grid"
    ):
        to_grid(series)


@pytest.mark.slow
def test_an_input_too_large_for_memory_is_one_line(tmp_path):
    """One job free to move for 399 days on a 5-min trace: the nowcast would need ~100 GB. Under a 3 GB address-space
    limit (so no machine tries to hand it over) the command says so in one line instead of a MemoryError."""
    trace = write_trace(tmp_path / "trace.csv", [300.0 + (i % 288) / 3 for i in range(400 * 288)], step_hours=1 / 12)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("arrival,duration,slack\n2024-01-01T00:00:00Z,4h,399d\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "carbon_pipe.cli",
            "backtest",
            "--trace",
            str(trace),
            "--jobs",
            str(jobs),
            "--policy",
            "rolling",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit_memory,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        "carbon-pipe: error: backtest: not enough memory for 115200 trace points and 1 jobs, the longest window 9580h; "
        "use a shorter trace, fewer jobs or shorter job windows (rolling and interruptible need memory growing with "
        "the window squared)"
    )
