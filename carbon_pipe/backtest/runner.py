"""One backtest as the command runs it: the setup, the jobs, the forecasts per draw, and the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import FieldError
from ..intensity.series import IntensitySeries
from ..timeutil import format_duration, iso
from .forecasts import Forecasts, IssuedForecasts, SyntheticForecasts
from .grid import Grid, period, to_grid
from .jobs import JobTable, Placement, periodic, place
from .policies import POLICIES
from .scoring import Evaluation, PolicyScore, check_policies, evaluate

if TYPE_CHECKING:
    from ..intensity.traces import ForecastVintages

DEFAULT_FORECAST_ERROR = 0.1
PERIODIC_DEFAULTS = {"duration": 4 * 3600.0, "slack": 24 * 3600.0, "every": 3600.0}


@dataclass(frozen=True)
class Setup:
    policies: tuple[str, ...] = ()
    duration: Optional[float] = None  # seconds; duration, slack and every describe evenly spaced jobs (no jobs table)
    slack: Optional[float] = None
    every: Optional[float] = None
    forecast_error: Optional[float] = None  # noise sd as a fraction of the whole trace's mean (synthetic forecasts)
    forecast_error_g: Optional[float] = None  # or in g/kWh
    seed: int = 0
    seeds: int = 1  # draws of synthetic noise: seed, seed + 1, ...
    threshold: Optional[float] = None
    min_chunk: Optional[float] = None  # default: one hour or one trace step, whichever is longer
    since: Optional[float] = None
    until: Optional[float] = None
    per_job: bool = False


@dataclass(frozen=True)
class Report:
    context: dict
    scores: list[PolicyScore]
    placement: Placement
    evaluation: Evaluation
    grid: Grid
    notes: tuple[str, ...]

    def as_dicts(self) -> list[dict]:
        """One dict per policy, each carrying the setup it was scored under."""
        dropped = [{"id": job, "reason": reason} for job, reason in self.placement.dropped]
        return [{**vars(score), **self.context, "notes": list(self.notes), "dropped": dropped} for score in self.scores]


def default_policies(threshold: Optional[float]) -> tuple[str, ...]:
    """Every policy; the threshold rule only when there is a threshold to apply."""
    return tuple(p for p in POLICIES if p != "threshold" or threshold is not None)


def run(
    series: IntensitySeries,
    setup: Setup,
    vintages: Optional["ForecastVintages"] = None,
    table: Optional[JobTable] = None,
) -> Report:
    """Score the policies on one trace, for evenly spaced jobs or the jobs of a table."""
    policies = setup.policies or default_policies(setup.threshold)
    check_policies(policies)
    grid = to_grid(series)
    first, end = period(grid, setup.since, setup.until)
    draws = forecast_draws(grid, setup, vintages)
    not_before = float(draws[0].issues[0]) if vintages is not None else None
    placement = placed_jobs(grid, setup, table, first, end, not_before)
    min_chunk = (
        grid.slots(setup.min_chunk, "minimum chunk")
        if setup.min_chunk is not None
        else max(1, int(np.ceil(3600 / grid.step)))
    )
    evaluation = evaluate(policies, grid, placement.jobs, draws, setup.threshold, min_chunk, setup.per_job)
    context = {
        "trace": series.region,
        "from": iso(grid.time(first)),
        "until": iso(grid.time(end)),
        "step_seconds": grid.step,
        "workload": table.origin if table is not None else "evenly spaced",
        **_periodic_context(setup, table),
        "min_chunk_hours": min_chunk * grid.step / 3600,
        "threshold_g_per_kwh": setup.threshold,
        "forecast": draws[0].label
        if len(draws) == 1
        else f"{draws[0].label} .. {setup.seed + len(draws) - 1} ({len(draws)} draws)",
        "seed": setup.seed,
        "seeds": len(draws),
    }
    return Report(
        context, evaluation.scores, placement, evaluation, grid, _notes(placement, evaluation, grid, policies)
    )


def _periodic_context(setup: Setup, table: Optional[JobTable]) -> dict:
    if table is not None:
        return {"duration_hours": None, "slack_hours": None, "every_hours": None}
    return {f"{name}_hours": seconds / 3600 for name, seconds in _lengths(setup).items()}


def _lengths(setup: Setup) -> dict[str, float]:
    """Duration, slack and spacing of evenly spaced jobs, defaults filled in."""
    return {
        name: default if getattr(setup, name) is None else getattr(setup, name)
        for name, default in PERIODIC_DEFAULTS.items()
    }


def forecast_draws(grid: Grid, setup: Setup, vintages: Optional["ForecastVintages"]) -> list[Forecasts]:
    synthetic = setup.forecast_error is not None or setup.forecast_error_g is not None
    if setup.seeds < 1:
        raise FieldError("seeds", "must be at least 1")
    if setup.seed < 0:
        raise FieldError("seed", "must not be negative")
    if vintages is not None:
        if synthetic:
            raise FieldError("forecast error", "synthetic forecasts and issued forecasts exclude each other")
        if setup.seeds > 1:
            raise FieldError("seeds", "issued forecasts have no noise to draw again")
        return [IssuedForecasts(grid, vintages)]
    if setup.forecast_error is not None and setup.forecast_error_g is not None:
        raise FieldError("forecast error", "give it as a fraction or in g/kWh, not both")
    error = DEFAULT_FORECAST_ERROR if setup.forecast_error is None else setup.forecast_error
    return [SyntheticForecasts(grid, error, setup.seed + k, setup.forecast_error_g) for k in range(setup.seeds)]


def placed_jobs(
    grid: Grid, setup: Setup, table: Optional[JobTable], first: int, end: int, not_before: Optional[float]
) -> Placement:
    if table is None:
        lengths = _lengths(setup)
        return Placement(
            periodic(grid, lengths["duration"], lengths["slack"], lengths["every"], first, end, not_before)
        )
    for name in PERIODIC_DEFAULTS:
        if getattr(setup, name) is not None:
            raise FieldError(name, "not used with a jobs table: each job has its own")
    return place(table, grid, first, end, not_before)


def _notes(placement: Placement, evaluation: Evaluation, grid: Grid, policies: tuple[str, ...]) -> tuple[str, ...]:
    notes = []
    if placement.rounded:
        notes.append(
            f"{placement.rounded} jobs put on the trace's {format_duration(grid.step)} steps: arrival rounded up, "
            "duration up, slack down"
        )
    if placement.outside_period:
        notes.append(f"{placement.outside_period} jobs arrive outside the period or the data, and are not scored")
    if evaluation.fallback_rows:
        notes.append(
            f"nowcast: {evaluation.fallback_rows} decisions had less than a day of history (or 12 h of deviations) "
            "and used the forecast as it is"
        )
    return tuple(notes)
