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
from ..layout import DECISION_JSON, HORIZON_JSON, INTENSITY_CSV, SCHEDULE_METRICS
from ..params import Params
from ..scheduling.duration import expected_duration
from ..scheduling.waiting import (
    Clock,
    Countdown,
    RealClock,
    Waited,
    check_horizon,
    decision_record,
    make_clock,
    unplanned_record,
    wait_for_window,
)
from ..scheduling.waiting_state import begin_wait
from ..signals import stop_requests
from ..timeutil import iso


def write_outputs(decision: dict, series: Optional[IntensitySeries]) -> None:
    """Without a series (stopped before any plan) an earlier decision's horizon must not outlive it: removed."""
    if series is None:
        HORIZON_JSON.unlink(missing_ok=True)
        INTENSITY_CSV.unlink(missing_ok=True)
    else:
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
    state = begin_wait(params, clock.now(), report)
    waited: Optional[Waited] = None
    wait = dict(submitted=state.submitted, on_plan=state.planned, **source_options)
    # SIGTERM ends a wait as Ctrl-C does, with what is known recorded: in the first fetch too.
    with stop_requests(interrupt=True) as received:
        try:
            if not isinstance(clock, RealClock):
                waited = wait_for_window(params, estimate.seconds, clock, report, **wait)
            else:  # a countdown only where someone may be watching the wall clock
                with Countdown(clock) as countdown:
                    waited = wait_for_window(params, estimate.seconds, clock, report, countdown.pause, **wait)
        except KeyboardInterrupt:  # in the first fetch, before any plan
            pass
    finished = waited is not None and waited.started is not None
    stopped = None if finished else signal.Signals(received[0] if received else signal.SIGINT)
    if stopped is not None:
        state.stopped(stopped.name, clock.now())
    decision = {
        **(unplanned_record(params, state.submitted, estimate) if waited is None else decision_record(params, waited, estimate)),
        "latest_start": iso(state.submitted + params.scheduler.max_wait),
        "signal": None if stopped is None else stopped.name,
        "resumed_wait": state.record(),
    }
    write_outputs(decision, None if waited is None else waited.outlook.series)
    if stopped is None:
        state.remove()  # decided: nothing left to resume
        return decision
    where = "before the planned start" if waited is not None else "during the first fetch, before any plan"
    raise Interrupted(
        f"wait-for-window: stopped by {stopped.name} at {iso(clock.now())} {where}; recorded in {DECISION_JSON}",
        exit_code=128 + stopped,
    )
