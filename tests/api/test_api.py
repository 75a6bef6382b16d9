"""The Python API on the real clock, with CSV traces: `track` charges each measured interval at the intensity of its
own time, `wait_for_window` blocks until the planned start and `plan` returns it at once; importing it is light."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import time

import pytest

import carbon_pipe
from carbon_pipe.errors import UsageError


def step_trace(path, first: int, seconds: int, step_at: int, before: float, after: float) -> None:
    """A trace with one row a second, `before` g/kWh until `step_at`, `after` from then on."""
    rows = [f"{t},{before if t < step_at else after}" for t in range(first, first + seconds)]
    path.write_text("timestamp,carbon_intensity\n" + "\n".join(rows) + "\n")


def test_importing_the_api_imports_neither_torch_nor_the_heavy_libraries():
    script = (
        "import sys; from carbon_pipe import track, plan, wait_for_window, WindowPlan, Tracked; "
        "heavy = ('torch', 'torchvision', 'pandas', 'pydantic', 'codecarbon', 'dvc'); "
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_tracked_block_is_charged_at_each_intervals_own_intensity(tmp_path):
    meter = carbon_pipe.track("busy", trace=tmp_path / "grid.csv", measure_power_secs=0.5, log=tmp_path / "log.csv")
    with meter as tracked:
        # The trace is read when the block ends: written here, its step at the first whole second an interval
        # (0.5 s) or more into the block.
        step = math.ceil(tracked.started + 0.5)
        step_trace(tmp_path / "grid.csv", step - 60, 240, step, before=100.0, after=700.0)
        while time.time() < step + 1.2:  # busy across the step, more than two intervals after it
            sum(range(10_000))
    assert meter.runs == [tracked] and tracked.error is None and tracked.source == "csv"
    intervals = tracked.intervals
    assert len(intervals) >= 3 and tracked.energy_kwh == pytest.approx(sum(i.energy_kwh for i in intervals))
    assert [i.intensity_g_per_kwh for i in intervals if i.end <= step] and all(
        i.intensity_g_per_kwh == 100.0 for i in intervals if i.end <= step
    )
    assert all(i.intensity_g_per_kwh == 700.0 for i in intervals if i.start >= step)
    assert any(i.start >= step for i in intervals)
    for interval in intervals:
        assert interval.emissions_kg == pytest.approx(interval.energy_kwh * interval.intensity_g_per_kwh / 1000)
    assert tracked.emissions_kg == pytest.approx(sum(i.emissions_kg for i in intervals))
    with open(tmp_path / "log.csv", newline="") as handle:
        logged = list(csv.DictReader(handle))
    assert len(logged) == len(intervals) and {row["label"] for row in logged} == {"busy"}


def test_a_decorated_function_is_metered_at_each_call_and_keeps_its_result(tmp_path):
    now = int(time.time())
    step_trace(tmp_path / "grid.csv", now - 60, 600, now + 1000, before=250.0, after=250.0)
    meter = carbon_pipe.track("square", trace=tmp_path / "grid.csv", measure_power_secs=0.5)

    @meter
    def square(x: int) -> int:
        time.sleep(0.2)
        return x * x

    assert [square(3), square(4)] == [9, 16]
    assert len(meter.runs) == 2 and all(run.emissions_kg is not None for run in meter.runs)
    assert all(i.intensity_g_per_kwh == 250.0 for run in meter.runs for i in run.intervals)


def test_a_block_outside_the_trace_keeps_its_energy_and_says_why_emissions_are_unknown(tmp_path):
    step_trace(tmp_path / "old.csv", 1_600_000_000, 120, 1_600_000_060, before=100.0, after=200.0)
    with carbon_pipe.track("late", trace=tmp_path / "old.csv", measure_power_secs=0.5) as tracked:
        time.sleep(0.2)
    assert tracked.emissions_kg is None and tracked.energy_kwh is not None
    assert tracked.error.startswith("no intensities for the block: every source failed: csv:")


@pytest.mark.slow
def test_wait_for_window_blocks_until_the_planned_start_and_plan_does_not(tmp_path):
    now = int(time.time())
    clean = now + 4  # 3 clean seconds from here, 400 g/kWh around them
    rows = [f"{t},{100 if clean <= t < clean + 3 else 400}" for t in range(now - 10, now + 60)]
    (tmp_path / "grid.csv").write_text("timestamp,carbon_intensity\n" + "\n".join(rows) + "\n")
    planned = carbon_pipe.plan("3s", "30s", trace=tmp_path / "grid.csv")
    assert planned.start.timestamp() == clean and planned.expected_mean_intensity == 100.0
    assert time.time() < clean  # it did not wait
    window = carbon_pipe.wait_for_window(3, "30s", trace=tmp_path / "grid.csv")
    # Re-planned as it woke at the planned start: it starts then, a few milliseconds into the clean seconds.
    assert clean <= window.start.timestamp() <= time.time() < clean + 1
    assert (window.source, window.duration_seconds) == ("csv", 3.0)
    assert window.expected_mean_intensity == pytest.approx(100, abs=10)


def test_bad_input_is_one_usage_error_naming_the_option(tmp_path):
    with pytest.raises(UsageError, match=r"--duration: 90 has no unit; write 90min"):
        carbon_pipe.plan("90")
    with pytest.raises(UsageError, match=r"--source: Input should be"):
        carbon_pipe.plan("90min", source="nowhere")
