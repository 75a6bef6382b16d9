"""wait-for-window: the decision on the simulated clock, and the real-clock loop's bounded waiting."""

import json
from dataclasses import dataclass, field

import pandas as pd
import pytest

from carbon_pipe import schedule
from carbon_pipe.errors import UsageError
from carbon_pipe.params import parse_params
from carbon_pipe.sources import get_source
from carbon_pipe.timeutil import parse_instant

from .conftest import default_params


@dataclass
class RecordingClock:
    """A wall clock whose sleeps are recorded and instant: exercises the real-clock path without waiting hours."""

    current: float
    sleeps: list = field(default_factory=list)
    simulated = False

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += seconds


def params_with(**scheduler):
    raw = default_params()
    raw["scheduler"].update(scheduler)
    return parse_params(raw)


def test_simulated_decision_picks_the_night_trough(workspace):
    params = params_with()
    decision = schedule.run_stage(params, report=lambda line: None)
    assert decision["rule"] == "lowest-mean" and decision["clock"] == "simulated" and not decision["slept"]
    start = parse_instant(decision["start"])
    assert decision["wait_seconds"] == start - parse_instant("2025-01-15T18:00:00Z") == 9 * 3600
    assert decision["expected_mean_intensity_g_per_kwh"] < 205 < 445 < decision["initial_intensity_g_per_kwh"]
    written = json.loads((workspace / "stages/wait-for-window/decision.json").read_text())
    assert written == json.loads(json.dumps(decision))
    metrics = json.loads((workspace / "metrics/schedule.json").read_text())
    assert metrics["wait_hours"] == 9.0 and metrics["rule"] == "lowest-mean"
    series = pd.read_csv(workspace / "stages/wait-for-window/intensity.csv")
    assert list(series.columns) == ["start", "end", "carbon_intensity", "is_forecast"]
    assert len(series) == 96  # 48 h of 30-min points


def test_threshold_rule_is_recorded_with_its_threshold(workspace):
    decision = schedule.run_stage(params_with(rule="threshold", threshold=300), report=lambda line: None)
    assert decision["rule"] == "threshold" and decision["threshold_g_per_kwh"] == 300
    assert decision["expected_mean_intensity_g_per_kwh"] <= 300
    assert 0 < decision["wait_seconds"] < 9 * 3600  # the first clean half-hour comes before the trough


def test_real_clock_waits_in_bounded_steps_and_never_overshoots():
    params = params_with(clock="real", rule="threshold", threshold=100, max_wait="2h", check_interval="25min")
    clock = RecordingClock(parse_instant("2025-01-15T18:00:00Z"))
    decision, _ = schedule.wait_for_window(get_source(params.carbon), params, clock)
    assert decision["slept"] and decision["wait_seconds"] == 2 * 3600  # threshold never met: exactly max wait
    assert clock.sleeps == [1500, 1500, 1500, 1500, 1200]  # capped at the deadline, not one interval past it


def test_real_clock_stops_waiting_at_the_planned_start():
    params = params_with(clock="real", rule="lowest-mean", check_interval="2h")
    clock = RecordingClock(parse_instant("2025-01-15T18:00:00Z"))
    decision, _ = schedule.wait_for_window(get_source(params.carbon), params, clock)
    assert sum(clock.sleeps) == decision["wait_seconds"] == 9 * 3600
    assert max(clock.sleeps) <= 2 * 3600


def test_horizon_must_cover_the_wait_and_the_job(workspace):
    params = parse_params({**default_params(), "carbon": {**default_params()["carbon"], "horizon": "6h"}})
    with pytest.raises(UsageError, match="carbon.horizon: must cover"):
        schedule.run_stage(params, report=lambda line: None)
    assert not (workspace / "stages").exists()
