"""Waiting for the window: plan, then (real clock) sleep towards the start, re-planning every replan_interval.

On the real clock the forecast is fetched again and the job re-planned every `replan_interval` (forecasts
improve as lead time shrinks), with a countdown on stderr; Ctrl-C stops waiting with what was decided so far.
A paused interruptible job waits for its next chunk with the same loop (replanning.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Optional

from ..config.params import Params
from ..errors import FetchCutShort
from ..intensity.sources import FetchDeadline, on_source_failure
from ..timeutil import format_duration, iso
from .clock import Clock, RealClock
from .outlook import Outlook, latest_start, look_ahead

ProgressLine = Callable[[str], None]  # one line of progress for whoever runs the command (stderr)
Sleeper = Callable[[float, Outlook, float], None]  # (seconds, what is planned, when the next re-plan is due)
OnPlan = Callable[[Outlook, float], None]  # (what is planned, when)


def quiet(line: str) -> None:
    """A `say` that keeps its lines to itself."""


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


@contextmanager
def pausing(clock: Clock, pause: Optional[Sleeper] = None) -> Iterator[Sleeper]:
    """How a wait sleeps: `pause` if one is given; else a countdown only where someone may be watching the wall
    clock (a RealClock), and the clock's own sleep anywhere else."""
    if pause is not None:
        yield pause
    elif isinstance(clock, RealClock):
        with Countdown(clock) as countdown:
            yield countdown.pause
    else:
        yield lambda seconds, outlook, replan_at: clock.sleep(seconds)


@dataclass
class Waited:
    """What the waiting loop ends with: the last outlook, when the job starts (None if interrupted), and how it went."""

    outlook: Outlook
    started: Optional[float]
    submitted: float
    replans: int
    replan_failures: list[str]


def replanned(params: Params, fetch: Callable[[], Outlook], kept: Callable[[str], None]) -> Optional[Outlook]:
    """A re-plan: `fetch`'s outlook, or None to keep the last plan, why told to `kept` (a source failure with
    fallback on, or a fetch cut at the latest start)."""
    try:
        with on_source_failure(params.carbon, kept):
            return fetch()
    except FetchCutShort as exc:
        # Kept with fallback off too: the job must start by its latest start, and failing the wait there would be
        # worse than starting on the plan it has. (The first fetch is not cut: it has no plan to keep.)
        kept(str(exc))
    return None


def wait_for_window(
    params: Params,
    duration: float,
    clock: Clock,
    say: ProgressLine = quiet,
    pause: Optional[Sleeper] = None,
    submitted: Optional[float] = None,
    deadline: Optional[float] = None,
    on_plan: OnPlan = lambda outlook, now: None,
    **source_options: Any,
) -> Waited:
    """Plan, then (real clock) sleep towards the planned start, re-fetching and re-planning every replan interval.

    The deadline is fixed at submission + max_wait and each pause ends at the planned start or the next
    re-plan, so the wait never overshoots. A re-fetch that fails keeps the last plan (recorded), unless
    fallback is off; one cut at the latest start keeps it in any case. On the simulated clock one plan is made
    and the wait is recorded, not slept.
    A paused interruptible job waits for its next chunk the same way: `submitted` is when the job was
    submitted (default: now), `duration` the work left and `deadline` when all of it must be done.
    `on_plan` is told of every plan made.
    """
    now = clock.now()
    submitted = now if submitted is None else submitted
    outlook = look_ahead(params, submitted, now, duration, deadline, **source_options)
    on_plan(outlook, now)
    replans, replan_failures = 0, []
    # The latest the work may start: a flexible job's latest start, or what a paused job's deadline leaves.
    start_by = latest_start(params, submitted) if deadline is None else deadline - duration

    def kept_the_last_plan(error: str) -> None:
        replan_failures.append(f"{iso(now)}: {error}; kept the plan made before")
        say(f"re-plan failed, keeping the last plan: {error}")

    with pausing(clock, pause) as sleep_for:
        try:
            while not clock.simulated and outlook.plan.start > now:
                step = min(params.scheduler.replan_interval, outlook.plan.start - now)
                say(
                    f"{iso(now)}: intensity {outlook.series.at(now):.0f} g/kWh, planned start "
                    f"{iso(outlook.plan.start)} at {outlook.plan.expected_mean_intensity:.0f} g/kWh; "
                    f"next look in {format_duration(step)}"
                )
                sleep_for(step, outlook, now + step)
                now = clock.now()
                # The whole re-fetch (fallback chain, alternatives) gets only the time left to the latest start.
                until = FetchDeadline.after(start_by - now, f"the time left to the latest start {iso(start_by)}")
                fetch = partial(look_ahead, params, submitted, now, duration, deadline, until=until, **source_options)
                if (fresh := replanned(params, fetch, kept_the_last_plan)) is not None:
                    on_plan(fresh, now)
                    outlook, replans = fresh, replans + 1
                now = clock.now()  # a slow fetch may have run past the planned start: start then, recorded as then
        except KeyboardInterrupt:
            return Waited(outlook, None, submitted, replans, replan_failures)
    started = outlook.plan.start if clock.simulated else now
    return Waited(outlook, started, submitted, replans, replan_failures)
