"""`plan` and `wait_for_window`: wait-for-window's planner, sources, fallback and secrets, from Python.

    import carbon_pipe
    window = carbon_pipe.wait_for_window("90min", "12h", source="uk")   # blocks until the planned start
    print(window.start, window.expected_mean_intensity)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Union

from .settings import Duration, api_params

if TYPE_CHECKING:
    from ..scheduling.outlook import Outlook


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True)
class WindowPlan:
    """Where the job goes: its start and end (UTC), its chunks (an interruptible plan has several), the mean
    intensity expected there and over the same time from now, and where the intensities came from."""

    start: datetime
    end: datetime
    chunks: tuple[tuple[datetime, datetime], ...]
    duration_seconds: float
    expected_mean_intensity: float  # gCO2/kWh over the planned chunks
    now_mean_intensity: float  # gCO2/kWh had it started now
    saving_vs_now_pct: float
    rule: str
    mode: str
    reason: str
    source: str
    region: str
    source_failures: tuple[str, ...]  # sources of the chain that failed before one delivered
    planned_at: datetime

    @classmethod
    def of(cls, outlook: Outlook, planned_at: float) -> WindowPlan:
        plan = outlook.plan
        return cls(
            start=_utc(plan.start),
            end=_utc(plan.end),
            chunks=tuple((_utc(chunk.start), _utc(chunk.end)) for chunk in plan.chunks),
            duration_seconds=plan.duration,
            expected_mean_intensity=plan.expected_mean_intensity,
            now_mean_intensity=plan.now_mean_intensity,
            saving_vs_now_pct=plan.saving_vs_now_pct,
            rule=plan.rule,
            mode=plan.mode,
            reason=plan.reason,
            source=outlook.series.source,
            region=outlook.series.region,
            source_failures=tuple(failure.error for failure in outlook.failures),
            planned_at=_utc(planned_at),
        )


def _seconds(config) -> float:
    from ..errors import UsageError

    if config.scheduler.expected_duration == "auto":
        raise UsageError("duration: give the job's length (auto scales a pipeline's last run)")
    return float(config.scheduler.expected_duration)


def plan(
    duration: Duration,
    max_wait: Duration = "12h",
    *,
    source: Optional[str] = None,
    region: Optional[str] = None,
    base_url: Optional[str] = None,
    trace: Optional[Union[str, Path]] = None,
    params: Optional[Union[str, Path]] = None,
) -> WindowPlan:
    """The low-carbon window for a job of `duration` that may wait up to `max_wait`, planned now, waiting for
    nothing. Durations are seconds or strings with a unit ("90min"). `source` is a fallback chain ("uk,mock"),
    `trace` a CSV trace file (any format the backtest reads) to plan on instead; the rest of the settings come
    from `params` (default ./params.yaml if there is one, else carbon-pipe's defaults)."""
    import time

    from ..scheduling.outlook import check_reach, look_ahead

    config = api_params(params, source, region, base_url, trace, duration, max_wait)
    seconds = _seconds(config)
    check_reach(config, seconds)
    now = time.time()
    return WindowPlan.of(look_ahead(config, now, now, seconds), now)


def wait_for_window(
    duration: Duration,
    max_wait: Duration = "12h",
    *,
    source: Optional[str] = None,
    region: Optional[str] = None,
    base_url: Optional[str] = None,
    trace: Optional[Union[str, Path]] = None,
    params: Optional[Union[str, Path]] = None,
    say: Optional[Callable[[str], None]] = None,
) -> WindowPlan:
    """Plan as `plan` does, then block until the planned start on the real clock, re-fetching and re-planning
    every scheduler.replan_interval as the wait-for-window stage does; return the plan it started on. `say` gets a
    line of progress at each re-plan. Ctrl-C raises KeyboardInterrupt."""
    from ..scheduling.clock import RealClock
    from ..scheduling.outlook import check_reach
    from ..scheduling.wait_loop import quiet
    from ..scheduling.wait_loop import wait_for_window as wait

    config = api_params(params, source, region, base_url, trace, duration, max_wait)
    seconds = _seconds(config)
    check_reach(config, seconds)
    clock = RealClock()
    waited = wait(config, seconds, clock, say or quiet, pause=lambda left, outlook, replan_at: clock.sleep(left))
    if waited.started is None:
        raise KeyboardInterrupt
    return WindowPlan.of(waited.outlook, waited.started)
