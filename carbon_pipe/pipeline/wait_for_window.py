"""The wait-for-window stage: fetch the intensity horizon, plan, wait for the plan (real clock) or record it.

On the real clock the forecast is fetched again and the job re-planned every `replan_interval` (forecasts
improve as lead time shrinks), with a countdown on stderr; Ctrl-C stops waiting and records what was decided.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Optional

from ..artifacts import write_json
from ..errors import Interrupted
from ..intensity.horizon import write_horizon
from ..intensity.series import IntensitySeries
from ..layout import DECISION_JSON, SCHEDULE_METRICS
from ..params import Params
from ..scheduling.duration import expected_duration
from ..scheduling.waiting import (
    Clock,
    Countdown,
    RealClock,
    check_horizon,
    decision_record,
    make_clock,
    wait_for_window,
)
from ..signals import stop_requests
from ..timeutil import iso


def write_outputs(decision: dict, series: IntensitySeries) -> None:
    write_horizon(decision, series)
    write_json(DECISION_JSON, decision)
    write_json(
        SCHEDULE_METRICS,
        {
            "rule": decision["rule"],
            "mode": decision["mode"],
            "source": decision["source"],
            "sources_failed": len(decision["source_failures"]),
            "clock": decision["clock"],
            "interrupted": decision["interrupted"],
            "wait_hours": None if decision["wait_seconds"] is None else decision["wait_seconds"] / 3600,
            "chunks": len(decision["chunks"]),
            "initial_intensity_g_per_kwh": decision["initial_intensity_g_per_kwh"],
            "expected_mean_intensity_g_per_kwh": decision["expected_mean_intensity_g_per_kwh"],
            "expected_saving_vs_now_pct": decision["expected_saving_vs_now_pct"],
        },
    )


def run_stage(params: Params, report: Callable[[str], None], clock: Optional[Clock] = None, **source_options: Any) -> dict:
    estimate = expected_duration(params)
    check_horizon(params, estimate.seconds)
    clock = clock or make_clock(params)
    # SIGTERM ends a wait as Ctrl-C does: with the decision so far recorded.
    with stop_requests(interrupt=True) as received:
        if not isinstance(clock, RealClock):
            waited = wait_for_window(params, estimate.seconds, clock, report, **source_options)
        else:  # a countdown only where someone may be watching the wall clock
            with Countdown(clock) as countdown:
                waited = wait_for_window(params, estimate.seconds, clock, report, countdown.pause, **source_options)
    decision = decision_record(params, waited, estimate)
    write_outputs(decision, waited.outlook.series)
    if waited.started is None:
        signum = received[0] if received else signal.SIGINT
        raise Interrupted(
            f"wait-for-window: stopped by {signal.Signals(signum).name} at {iso(clock.now())} before the planned start; "
            f"recorded in {DECISION_JSON}",
            exit_code=128 + signum,
        )
    return decision
