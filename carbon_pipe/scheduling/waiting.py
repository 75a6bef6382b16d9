"""The wait-for-window stage: fetch the intensity horizon, plan, wait for the plan (real clock) or record it.

On the real clock the forecast is fetched again and the job re-planned every `replan_interval` (forecasts
improve as lead time shrinks), with a countdown on stderr; Ctrl-C stops waiting and records what was decided.
A rerun of a wait that was stopped or killed resumes it: same submission time, same deadline (waiting_state.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from ..errors import SourceError, UsageError
from ..params import Params
from ..timeutil import format_duration, iso
from .duration import DurationEstimate
from .outlook import Outlook, chunk_records, look_ahead


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


def make_clock(params: Params) -> Clock:
    if params.scheduler.clock == "simulated":
        assert params.scheduler.now is not None  # guaranteed by parse_params
        return SimulatedClock(params.scheduler.now)
    return RealClock()


def check_horizon(params: Params, duration: float) -> None:
    needed = params.scheduler.max_wait + duration
    if params.carbon.horizon < needed:
        raise UsageError(
            "carbon.horizon: must cover scheduler.max_wait + the expected duration "
            f"({needed / 3600:g} h), got {params.carbon.horizon / 3600:g} h"
        )


Pause = Callable[[float, Outlook, float], None]  # (seconds, what is planned, when the next re-plan is due)
OnPlan = Callable[[Outlook, float], None]  # (what is planned, when)


class Countdown:
    """A live line on stderr while waiting: time to the planned start, intensity now and planned, next re-plan."""

    def __init__(self, clock: Clock, tick: float = 1.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.clock, self.tick = clock, tick
        self.live = Live(console=Console(stderr=True), transient=True, auto_refresh=False)

    def __enter__(self) -> "Countdown":
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def pause(self, seconds: float, outlook: Outlook, replan_at: float) -> None:
        until = self.clock.now() + seconds
        while (left := until - self.clock.now()) > 0:
            now = self.clock.now()
            plan, series = outlook.plan, outlook.series
            self.live.update(
                f"[bold]waiting[/] {format_duration(plan.start - now)} for {iso(plan.start)[:16]}Z · "
                f"{series.at(min(now, series.end)):.0f} g/kWh now, {plan.expected_mean_intensity:.0f} planned "
                f"({series.source} {series.region}) · re-plan in {format_duration(max(0.0, replan_at - now))} · "
                "Ctrl-C records and stops",
                refresh=True,
            )
            self.clock.sleep(min(self.tick, left))


@dataclass
class Waited:
    """What the waiting loop ends with: the last outlook, when the job starts (None if interrupted), and how it went."""

    outlook: Outlook
    started: Optional[float]
    submitted: float
    replans: int
    replan_failures: list[str]


def wait_for_window(
    params: Params,
    duration: float,
    clock: Clock,
    report: Callable[[str], None] = lambda line: None,
    pause: Optional[Pause] = None,
    submitted: Optional[float] = None,
    deadline: Optional[float] = None,
    on_plan: OnPlan = lambda outlook, now: None,
    **source_options: Any,
) -> Waited:
    """Plan, then (real clock) sleep towards the planned start, re-fetching and re-planning every replan interval.

    The deadline is fixed at submission + max_wait and each pause ends at the planned start or the next
    re-plan, so the wait never overshoots. A re-fetch that fails keeps the last plan (recorded), unless
    fallback is off. On the simulated clock one plan is made and the wait is recorded, not slept.
    A paused interruptible job waits for its next chunk the same way: `submitted` is when the job was
    submitted (default: now), `duration` the work left and `deadline` when all of it must be done.
    `on_plan` is told of every plan made.
    """
    pause = pause or (lambda seconds, outlook, replan_at: clock.sleep(seconds))
    now = clock.now()
    submitted = now if submitted is None else submitted
    outlook = look_ahead(params, submitted, now, duration, deadline, **source_options)
    on_plan(outlook, now)
    replans, replan_failures = 0, []
    try:
        while not clock.simulated and outlook.plan.start > now:
            step = min(params.scheduler.replan_interval, outlook.plan.start - now)
            report(
                f"{iso(now)}: intensity {outlook.series.at(now):.0f} g/kWh, planned start {iso(outlook.plan.start)} "
                f"at {outlook.plan.expected_mean_intensity:.0f} g/kWh; next look in {format_duration(step)}"
            )
            pause(step, outlook, now + step)
            now = clock.now()
            try:
                outlook = look_ahead(params, submitted, now, duration, deadline, **source_options)
                on_plan(outlook, now)
                replans += 1
            except (SourceError, UsageError) as exc:
                if not params.carbon.fallback:
                    raise
                replan_failures.append(f"{iso(now)}: {exc}; kept the plan made before")
                report(f"re-plan failed, keeping the last plan: {exc}")
    except KeyboardInterrupt:
        return Waited(outlook, None, submitted, replans, replan_failures)
    started = outlook.plan.start if clock.simulated else now
    return Waited(outlook, started, submitted, replans, replan_failures)


def decision_record(params: Params, waited: Waited, estimate: DurationEstimate) -> dict[str, Any]:
    outlook, started, submitted = waited.outlook, waited.started, waited.submitted
    plan, series = outlook.plan, outlook.series
    now_mean = series.mean(submitted, submitted + plan.duration)
    return {
        "source": series.source,
        "region": series.region,
        "clock": params.scheduler.clock,
        "rule": plan.rule,
        "mode": plan.mode,
        "now": iso(submitted),
        "start": None if started is None else iso(started),
        "expected_end": None if started is None else iso(plan.end),
        "wait_seconds": None if started is None else started - submitted,
        "slept": params.scheduler.clock == "real",
        "interrupted": started is None,
        "initial_intensity_g_per_kwh": series.at(submitted),
        "expected_mean_intensity_g_per_kwh": plan.expected_mean_intensity,
        "now_mean_intensity_g_per_kwh": now_mean,
        "expected_saving_vs_now_pct": 100.0 * (1 - plan.expected_mean_intensity / now_mean) if now_mean > 0 else 0.0,
        "expected_duration_seconds": plan.duration,
        "duration_source": estimate.source,
        "duration_basis": estimate.basis,
        "max_wait_seconds": params.scheduler.max_wait,
        "min_chunk_seconds": params.scheduler.min_chunk if plan.mode == "interruptible" else None,
        "threshold_g_per_kwh": params.scheduler.threshold if plan.rule == "threshold" else None,
        "min_saving_pct": params.scheduler.min_saving_pct if plan.rule == "lowest-mean" else None,
        "chunks": chunk_records(plan),
        "reason": plan.reason,
        **outlook.record(),
        "fallback": params.carbon.fallback,
        "locations": list(outlook.locations),
        "replans": waited.replans,
        "replan_failures": waited.replan_failures,
        "series_notes": list(series.notes),
    }


def unplanned_record(params: Params, submitted: float, estimate: DurationEstimate) -> dict[str, Any]:
    """What an attempt stopped in its first fetch knows: when the job was submitted, and that nothing started."""
    scheduler = params.scheduler
    unknown = (
        "source", "region", "start", "expected_end", "wait_seconds", "initial_intensity_g_per_kwh",
        "expected_mean_intensity_g_per_kwh", "now_mean_intensity_g_per_kwh", "expected_saving_vs_now_pct",
    )
    return {
        **dict.fromkeys(unknown),
        "clock": scheduler.clock, "rule": scheduler.rule, "mode": scheduler.mode, "now": iso(submitted),
        "slept": scheduler.clock == "real", "interrupted": True, "expected_duration_seconds": estimate.seconds,
        "duration_source": estimate.source, "duration_basis": estimate.basis, "max_wait_seconds": scheduler.max_wait,
        "chunks": [], "reason": "stopped during the first fetch of intensities, before any plan was made",
        "source_chain": [], "source_failures": [], "replans": 0, "replan_failures": [],
    }
