"""One planning round, shared by `intensity`, `plan` and wait-for-window: fetch (with fallback), plan, pick a place.

The fetching is I/O; the choices are the pure planner's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config.carbon import carbon_for
from ..config.params import Params, SchedulerParams
from ..errors import SourceError, UsageError
from ..intensity.series import IntensitySeries
from ..intensity.sources import Fetched, SourceFailure, fetch_from, fetch_series, on_source_failure
from ..timeutil import iso
from . import planner

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Outlook:
    """The chosen place's series and plan, every place considered, and every source that failed on the way."""

    fetched: Fetched
    plan: planner.Plan
    locations: tuple[dict[str, Any], ...]
    failures: tuple[SourceFailure, ...]

    @property
    def series(self) -> IntensitySeries:
        return self.fetched.series

    def record(self) -> dict[str, Any]:
        """Where the intensities came from, for decision.json, horizon.json and the run summaries."""
        return {**self.fetched.record(), "source_failures": [failure.to_dict() for failure in self.failures]}


def chunk_records(chunks: tuple[planner.Chunk, ...]) -> list[dict[str, Any]]:
    """A plan's chunks as decision.json and `plan --json` hold them."""
    return [
        {"start": iso(chunk.start), "end": iso(chunk.end), "expected_mean_intensity_g_per_kwh": chunk.mean_intensity}
        for chunk in chunks
    ]


def latest_start(params: Params, submitted: float) -> float:
    """The latest a flexible job submitted at `submitted` may start: the deadline every wait keeps."""
    return submitted + params.scheduler.max_wait


def check_reach(params: Params, duration: float) -> None:
    """carbon.horizon, how far ahead intensities are fetched, must reach past the latest start and the job."""
    needed = params.scheduler.max_wait + duration
    if params.carbon.horizon < needed:
        raise UsageError(
            "carbon.horizon: must cover scheduler.max_wait + the expected duration "
            f"({needed / 3600:g} h), got {params.carbon.horizon / 3600:g} h"
        )


def plan_window(
    series: IntensitySeries, now: float, latest_start: float, scheduler: SchedulerParams, duration: float,
    deadline: float | None = None,
) -> planner.Plan:
    """Apply the configured rule and mode: start (or, interruptible, run) no earlier than `now`; a flexible job
    starts by `latest_start`, an interruptible one finishes by `deadline` (default `latest_start + duration`, so
    it can always do at least as well as the flexible plan; the rest of a paused job keeps its first deadline)."""
    latest = max(now, latest_start)
    if scheduler.rule == "now":
        return planner.start_now(series, now, duration)
    if scheduler.rule == "threshold":
        return planner.threshold_start(series, now, latest, duration, scheduler.threshold)
    if scheduler.mode == "interruptible":
        finish_by = latest + duration if deadline is None else deadline
        return planner.interruptible_plan(
            series, now, finish_by, duration, scheduler.min_chunk, scheduler.min_saving_pct
        )
    return planner.lowest_mean_start(series, now, latest, duration, scheduler.min_saving_pct)


def _planned(
    fetched: Fetched, now: float, latest_start: float, params: Params, duration: float, deadline: float | None
) -> planner.Plan:
    try:
        return plan_window(fetched.series, now, latest_start, params.scheduler, duration, deadline)
    except ValueError as exc:
        raise SourceError(f"{fetched.series.source}: {exc}") from None


def look_ahead(
    params: Params, submitted: float, now: float, duration: float, deadline: float | None = None, **options: Any
) -> Outlook:
    """Fetch from `submitted` over carbon.horizon, plan from `now`, and choose among the configured places.

    Every source must reach the latest moment the plan may use (submission + max_wait + duration, or an
    interruptible job's `deadline`); one that does not counts as failed. Alternatives that fail are skipped and
    recorded (an error with fallback off).
    """
    latest = latest_start(params, submitted)
    need_until = max(now, latest) + duration if deadline is None else deadline
    end = max(submitted + params.carbon.horizon, need_until)
    primary = fetch_series(params.carbon, submitted, end, need_until, **options)
    candidates = [(primary, _planned(primary, now, latest, params, duration, deadline))]
    failures = list(primary.failures)
    for place in params.carbon.alternatives:
        carbon = carbon_for(params.carbon, place.source, place.region)
        where = (place.source, place.region)
        with on_source_failure(params.carbon, lambda error: failures.append(SourceFailure(*where, error))):
            series, _ = fetch_from(carbon, place.source, submitted, end, need_until, **options)
            fetched = Fetched(series, (place.source,), ())
            candidates.append((fetched, _planned(fetched, now, latest, params, duration, deadline)))
    best = planner.cheapest_location([plan for _, plan in candidates])
    locations = tuple(
        {
            "source": fetched.series.source,
            "region": fetched.series.region,
            "start": iso(plan.start),
            "expected_mean_intensity_g_per_kwh": plan.expected_mean_intensity,
            "now_mean_intensity_g_per_kwh": plan.now_mean_intensity,
            "chosen": index == best,
        }
        for index, (fetched, plan) in enumerate(candidates)
    )
    chosen, plan = candidates[best]
    return Outlook(chosen, plan, locations if params.carbon.alternatives else (), tuple(failures))


def replayed(params: Params, now: float, ahead: float) -> tuple[Params, str | None]:
    """A trace file that does not hold the real `now` (a record of the past) is looked at from the last moment
    that leaves `ahead` seconds of it, on the simulated clock, and a note says so; one that holds now: as it is."""
    from ..config.params import with_overrides
    from ..intensity.sources.csv_trace import CsvTraceSource

    if params.scheduler.clock != "real" or params.carbon.sources[0] != "csv":
        return params, None
    trace = CsvTraceSource(params.carbon).whole()
    if trace.start <= now < trace.end:
        return params, None
    moment = max(trace.start, (trace.end - ahead) // 60 * 60)
    note = (
        f"{params.carbon.csv.path} covers {iso(trace.start)} to {iso(trace.end)}, not now: looking from "
        f"{iso(moment)}, the last time it covers {ahead / 3600:g} h ahead (--now picks another)"
    )
    return with_overrides(params, now=iso(moment)), note


def plan_summary(
    outlook: Outlook, duration_source: str, duration_basis: str, clock: str, now: float
) -> dict[str, Any]:
    """`carbon-pipe plan --json`: the plan made at `now` on `clock` (simulated: scheduler.now or --now)."""
    plan = outlook.plan
    return {
        "clock": clock,
        "now": iso(now),
        "source": outlook.series.source,
        "region": outlook.series.region,
        "start": iso(plan.start),
        "end": iso(plan.end),
        "expected_mean_intensity": plan.expected_mean_intensity,
        "now_mean_intensity": plan.now_mean_intensity,
        "saving_vs_now_pct": plan.saving_vs_now_pct,
        "mode": plan.mode,
        "rule": plan.rule,
        "duration_seconds": plan.duration,
        "duration_source": duration_source,
        "duration_basis": duration_basis,
        "chunks": chunk_records(plan.chunks),
        "reason": plan.reason,
        **outlook.record(),
        "locations": list(outlook.locations),
        "series_notes": list(outlook.series.notes),
    }


def intensity_summary(params: Params, now: float, **options: Any) -> dict[str, Any]:
    """`carbon-pipe intensity --json`: the value in force now and what follows it over carbon.horizon."""
    fetched = fetch_series(params.carbon, now, now + params.carbon.horizon, now, with_details=True, **options)
    series, details = fetched.series, fetched.details
    return {
        "source": series.source,
        "region": series.region,
        "clock": params.scheduler.clock,
        "now": iso(now),
        "current_intensity": series.at(now),
        "forecast": [
            {
                "timestamp": iso(point.start),
                "carbon_intensity": point.carbon_intensity,
                "interval_seconds": point.end - point.start,
                "is_forecast": point.is_forecast,
            }
            for point in series.points()
            if point.end > now
        ],
        **details,
        **fetched.record(),
        "series_notes": list(series.notes),
    }


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] for v in values)


def clock_line(summary: dict[str, Any]) -> list[str]:
    """On the simulated clock "now" is not the wall clock's: say so, and how to look from the wall clock."""
    if summary["clock"] != "simulated":
        return []
    return [
        f"simulated clock: now is {summary['now']} (scheduler.now, or --now), not the wall clock's time; "
        "--clock real looks from the wall clock"
    ]


def render_intensity(summary: dict[str, Any]) -> str:
    values = [point["carbon_intensity"] for point in summary["forecast"]]
    lowest = min(summary["forecast"], key=lambda point: point["carbon_intensity"])
    simulated = ", simulated clock" if summary["clock"] == "simulated" else ""
    lines = [
        f"{summary['source']} {summary['region']}: {summary['current_intensity']:.0f} gCO2/kWh now "
        f"({summary['now']}{simulated})",
        f"next {len(values)} points: {sparkline(values)}  {min(values):.0f}-{max(values):.0f} g/kWh, "
        f"lowest from {lowest['timestamp']}",
    ]
    if "signal_index_percentile" in summary:
        lines.append(f"WattTime signal index: {summary['signal_index_percentile']:.0f}th percentile")
    lines += [
        f"{point['timestamp']}  {point['carbon_intensity']:7.1f}  {'forecast' if point['is_forecast'] else 'actual'}"
        for point in summary["forecast"]
    ]
    lines += [f"fell back: {failure['error']}" for failure in summary["source_failures"]]
    lines += [f"note: {note}" for note in summary["series_notes"]]
    return "\n".join(lines + clock_line(summary))


def render_plan(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['source']} {summary['region']}, {summary['mode']} {summary['rule']}: "
        f"start {summary['start']}, end {summary['end']}",
        f"expected {summary['expected_mean_intensity']:.1f} g/kWh vs {summary['now_mean_intensity']:.1f} now "
        f"({summary['saving_vs_now_pct']:.1f} % lower); "
        f"duration {summary['duration_seconds']:.0f} s from {summary['duration_basis']}",
        summary["reason"],
    ]
    if len(summary["chunks"]) > 1:
        lines += [
            f"  chunk {c['start']} to {c['end']} at {c['expected_mean_intensity_g_per_kwh']:.1f} g/kWh"
            for c in summary["chunks"]
        ]
    lines += [
        f"  place {p['source']} {p['region']}: {p['expected_mean_intensity_g_per_kwh']:.1f} g/kWh from {p['start']}"
        + (" (chosen)" if p["chosen"] else "")
        for p in summary["locations"]
    ]
    lines += [f"fell back: {failure['error']}" for failure in summary["source_failures"]]
    return "\n".join(lines + clock_line(summary))
