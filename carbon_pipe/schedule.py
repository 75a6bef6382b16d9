"""The wait-for-window stage: fetch the intensity horizon, plan the start, wait for it (real clock) or record it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import pandas as pd

from . import planner
from .artifacts import read_json, write_csv, write_json
from .errors import ArtifactError, UsageError
from .layout import DECISION_JSON, HORIZON_JSON, INTENSITY_CSV, SCHEDULE_METRICS
from .params import Params, SchedulerParams
from .series import IntensitySeries
from .sources import IntensitySource, get_source
from .timeutil import iso



class Clock(Protocol):
    simulated: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    simulated = False

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class SimulatedClock:
    """'Now' is a param; sleeping only moves the hands."""

    current: float
    simulated = True

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += seconds


def plan_window(series: IntensitySeries, now: float, deadline: float, scheduler: SchedulerParams) -> planner.Plan:
    """Apply the configured rule to start no earlier than `now` and no later than `deadline`."""
    duration = scheduler.expected_duration
    latest = max(now, deadline)
    if scheduler.rule == "now":
        return planner.start_now(series, now, duration)
    if scheduler.rule == "threshold":
        return planner.threshold_start(series, now, latest, duration, scheduler.threshold)
    return planner.lowest_mean_start(series, now, latest, duration)


def make_clock(params: Params) -> Clock:
    if params.scheduler.clock == "simulated":
        assert params.scheduler.now is not None  # guaranteed by parse_params
        return SimulatedClock(params.scheduler.now)
    return RealClock()


def check_horizon(params: Params) -> None:
    needed = params.scheduler.max_wait + params.scheduler.expected_duration
    if params.carbon.horizon < needed:
        raise UsageError(
            "carbon.horizon: must cover scheduler.max_wait + scheduler.expected_duration "
            f"({needed / 3600:g} h), got {params.carbon.horizon / 3600:g} h"
        )


def wait_for_window(
    source: IntensitySource,
    params: Params,
    clock: Clock,
    report: Callable[[str], None] = lambda line: None,
) -> tuple[dict, IntensitySeries]:
    """Plan, then (real clock) sleep towards the planned start, re-fetching and re-planning every check interval.

    The deadline is fixed at submission + max_wait and each sleep is capped at the planned start, so the
    wait never overshoots. On the simulated clock one plan is made and the wait is recorded, not slept.
    """
    scheduler = params.scheduler
    submitted = clock.now()
    deadline = submitted + scheduler.max_wait
    horizon_end = submitted + params.carbon.horizon
    while True:
        now = clock.now()
        series = source.series(submitted, max(horizon_end, now + scheduler.expected_duration))
        plan = plan_window(series, now, deadline, scheduler)
        if clock.simulated or plan.start <= now:
            break
        pause = min(scheduler.check_interval, plan.start - now)
        report(f"{iso(now)}: intensity {series.at(now):.0f} g/kWh, planned start {iso(plan.start)} "
               f"at {plan.expected_mean_intensity:.0f} g/kWh; sleeping {pause:.0f} s")
        clock.sleep(pause)
    started = plan.start if clock.simulated else clock.now()
    now_mean = series.mean(submitted, submitted + plan.duration)
    decision = {
        "source": series.source,
        "region": series.region,
        "clock": scheduler.clock,
        "rule": plan.rule,
        "now": iso(submitted),
        "start": iso(started),
        "expected_end": iso(started + plan.duration),
        "wait_seconds": started - submitted,
        "slept": not clock.simulated,
        "initial_intensity_g_per_kwh": series.at(submitted),
        "expected_mean_intensity_g_per_kwh": plan.expected_mean_intensity,
        "now_mean_intensity_g_per_kwh": now_mean,
        "expected_saving_vs_now_pct": 100.0 * (1 - plan.expected_mean_intensity / now_mean) if now_mean > 0 else 0.0,
        "expected_duration_seconds": plan.duration,
        "max_wait_seconds": scheduler.max_wait,
        "threshold_g_per_kwh": scheduler.threshold if plan.rule == "threshold" else None,
        "reason": plan.reason,
        "series_notes": list(series.notes),
    }
    return decision, series


def load_horizon() -> tuple[dict, IntensitySeries]:
    """The intensity series the scheduler saw, and when the job was submitted, as wait-for-window wrote them."""
    horizon = read_json(HORIZON_JSON)
    try:
        frame = pd.read_csv(INTENSITY_CSV)
    except FileNotFoundError:
        raise ArtifactError(f"{INTENSITY_CSV} is missing: run wait-for-window first") from None
    return horizon, IntensitySeries.from_frame(frame, horizon["source"], horizon["region"], tuple(horizon["series_notes"]))


def run_stage(params: Params, report: Callable[[str], None]) -> dict:
    check_horizon(params)
    decision, series = wait_for_window(get_source(params.carbon), params, make_clock(params), report)
    write_csv(INTENSITY_CSV, series.to_frame())
    write_json(HORIZON_JSON, {key: decision[key] for key in ("source", "region", "clock", "now", "series_notes")})
    write_json(DECISION_JSON, decision)
    write_json(
        SCHEDULE_METRICS,
        {
            "rule": decision["rule"],
            "source": decision["source"],
            "clock": decision["clock"],
            "wait_hours": decision["wait_seconds"] / 3600,
            "initial_intensity_g_per_kwh": decision["initial_intensity_g_per_kwh"],
            "expected_mean_intensity_g_per_kwh": decision["expected_mean_intensity_g_per_kwh"],
            "expected_saving_vs_now_pct": decision["expected_saving_vs_now_pct"],
        },
    )
    return decision
