"""Equal plans go to the earliest start, and a saving under scheduler.min_saving_pct is not worth waiting for.

Float rounding must not break ties: a flat series of values that are not exactly representable (123.456, WattTime
values converted from lbs/MWh, 1/3) differs between starts only by rounding, and the mock curve's troughs on
successive days are equal.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.cli import app
from carbon_pipe.config.params import SchedulerParams, parse_params
from carbon_pipe.errors import ParamsError
from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.intensity.traces import LBS_PER_MWH_TO_G_PER_KWH
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.scheduling import outlook, planner
from carbon_pipe.timeutil import parse_instant

from ..conftest import default_params, write_params

HOUR = 3600.0
SUBMITTED = parse_instant("2025-01-15T18:00:00Z")
FIRST_TROUGH = parse_instant("2025-01-16T03:00:00Z")  # the mock curve's lowest half-hour, 03:00-03:30 London time
NOT_REPRESENTABLE = [123.456, 270.3 * LBS_PER_MWH_TO_G_PER_KWH, 1 / 3]


def half_hourly(values: np.ndarray, start: float = SUBMITTED) -> IntensitySeries:
    boundaries = start + 1800.0 * np.arange(len(values) + 1)
    return IntensitySeries(boundaries, np.asarray(values, dtype=float), np.zeros(len(values), bool), "test", "XX")


def flat(value: float, hours: float) -> IntensitySeries:
    return half_hourly(np.full(int(hours * 2), value))


@pytest.mark.slow
@pytest.mark.parametrize("value", NOT_REPRESENTABLE)
@pytest.mark.parametrize("slack", [12 * HOUR, 3 * 24 * HOUR, 7 * 24 * HOUR])
@pytest.mark.parametrize("late", [0.0, 1234.5], ids=["on-a-boundary", "wall-clock"])
def test_a_flat_series_starts_now(value, slack, late):
    series = flat(value, slack / HOUR + 6)
    now = SUBMITTED + late
    for duration in [600.0, 37 * 60.0, 2.5 * HOUR, 4 * HOUR]:
        flexible = planner.lowest_mean_start(series, now, now + slack, duration)
        assert flexible.start == now, (duration, flexible.reason)
        for min_chunk in [0.0, 1800.0]:
            interruptible = planner.interruptible_plan(series, now, now + slack + duration, duration, min_chunk)
            assert [(c.start, c.end) for c in interruptible.chunks] == [(now, now + duration)], (duration, min_chunk)


def params_with(carbon=None, **scheduler):
    raw = default_params()
    raw["scheduler"].update(scheduler)
    raw["carbon"].update(carbon or {})
    return parse_params(raw)


@pytest.mark.parametrize("mode", ["flexible", "interruptible"])
def test_the_mock_curve_starts_at_the_first_of_its_equal_troughs(mode):
    params = params_with(carbon={"horizon": "72h"}, max_wait="48h", mode=mode)
    plan = outlook.look_ahead(params, SUBMITTED, SUBMITTED, 600.0).plan
    assert plan.start == FIRST_TROUGH and len(plan.chunks) == 1, plan.reason


def plan_json(workspace, *options: str) -> dict:
    write_params(workspace, default_params())
    result = CliRunner().invoke(app, ["plan", "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_with_a_week_of_slack_starts_within_the_first_day(workspace):
    report = plan_json(workspace, "--slack", "7d")
    assert parse_instant(report["start"]) == FIRST_TROUGH < SUBMITTED + 24 * HOUR


@pytest.mark.slow
def test_a_century_of_slack_still_starts_at_the_first_trough(workspace):
    assert parse_instant(plan_json(workspace, "--slack", "36500d")["start"]) == FIRST_TROUGH


def test_a_century_of_max_wait_with_the_default_horizon_is_one_line(workspace):
    raw = default_params()
    raw["scheduler"]["max_wait"] = "36500d"
    write_params(workspace, raw)
    result = CliRunner().invoke(app, ["wait-for-window", "--params", "params.yaml"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: carbon.horizon: must cover scheduler.max_wait + the expected duration (876000 h), got 48 h"
    ]
    assert not (workspace / "stages").exists()


def test_places_within_rounding_of_each_other_keep_the_first():
    series = flat(123.456, 6)
    plan = planner.lowest_mean_start(series, SUBMITTED, SUBMITTED + HOUR, HOUR)
    noisy = planner.Plan(
        plan.rule, plan.chunks, plan.expected_mean_intensity * (1 - 1e-15), plan.now_mean_intensity, plan.reason
    )
    assert planner.cheapest_location([plan, noisy]) == 0
    cleaner = planner.Plan(
        plan.rule, plan.chunks, plan.expected_mean_intensity * (1 - 1e-6), plan.now_mean_intensity, plan.reason
    )
    assert planner.cheapest_location([plan, cleaner]) == 1


# -- scheduler.min_saving_pct ------------------------------------------------------------------------------------


def slightly_cheaper_later(saving_pct: float) -> IntensitySeries:
    """200 g/kWh for a day, except 1 h from 12:00 after submission that is `saving_pct` % cheaper."""
    values = np.full(48, 200.0)
    values[24:26] = 200.0 * (1 - saving_pct / 100)
    return half_hourly(values)


@pytest.mark.parametrize("mode", ["flexible", "interruptible"])
def test_a_saving_under_min_saving_pct_starts_now_and_says_why(mode):
    series, duration = slightly_cheaper_later(0.05), 1800.0
    default = SchedulerParams(mode=mode)
    assert default.min_saving_pct == 0.1
    plan = outlook.plan_window(series, SUBMITTED, SUBMITTED + 20 * HOUR, default, duration)
    assert [(c.start, c.end) for c in plan.chunks] == [(SUBMITTED, SUBMITTED + duration)] and plan.mode == mode
    assert plan.expected_mean_intensity == plan.now_mean_intensity == 200.0
    assert "scheduler.min_saving_pct" in plan.reason and "0.05 %" in plan.reason, plan.reason
    exact = outlook.plan_window(
        series, SUBMITTED, SUBMITTED + 20 * HOUR, SchedulerParams(mode=mode, min_saving_pct=0), duration
    )
    assert exact.start == SUBMITTED + 12 * HOUR and exact.saving_vs_now_pct == pytest.approx(0.05)
    assert "min_saving_pct" not in exact.reason


@pytest.mark.parametrize("mode", ["flexible", "interruptible"])
def test_a_saving_over_min_saving_pct_still_waits(mode):
    series = slightly_cheaper_later(0.2)
    plan = outlook.plan_window(series, SUBMITTED, SUBMITTED + 20 * HOUR, SchedulerParams(mode=mode), 1800.0)
    assert plan.start == SUBMITTED + 12 * HOUR and plan.saving_vs_now_pct == pytest.approx(0.2)


def test_the_decision_records_min_saving_pct(workspace):
    decision = wait_for_window.run_stage(params_with(min_saving_pct=2.5), say=lambda line: None).to_json()
    assert decision["min_saving_pct"] == 2.5
    assert wait_for_window.run_stage(params_with(rule="now"), say=lambda line: None).to_json()["min_saving_pct"] is None


@pytest.mark.parametrize("bad", [-0.1, 100, float("nan"), float("inf"), "a lot"])
def test_min_saving_pct_must_be_a_finite_percentage(bad):
    raw = default_params()
    raw["scheduler"]["min_saving_pct"] = bad
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    assert str(caught.value).startswith("params.yaml: scheduler.min_saving_pct: ") and "\n" not in str(caught.value)
    raw["scheduler"]["min_saving_pct"] = 0
    assert parse_params(raw).scheduler.min_saving_pct == 0
