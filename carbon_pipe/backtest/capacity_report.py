"""One capacity backtest as the command runs it (`backtest --capacity K`): the policies of capacity.py scored
against first-come and the oracle, per forecast draw, and the report as a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..intensity.series import IntensitySeries
from ..scheduling.joint import QueuedJob, slot
from ..timeutil import iso
from . import capacity as cap
from .grid import Grid, period, to_grid
from .jobs import JobTable
from .runner import Setup, forecast_draws, placed_jobs

if TYPE_CHECKING:
    from ..intensity.traces import ForecastVintages


@dataclass(frozen=True)
class CapacityReport:
    context: dict
    scores: list[cap.CapacityScore]  # per policy; forecast-led policies once per draw, in draw order
    runs: dict[tuple[str, int], cap.Runs]  # (policy, draw) -> where each job ran
    jobs: list[QueuedJob]
    notes: tuple[str, ...]

    def as_dicts(self) -> list[dict]:
        return [{**vars(score), **self.context, "notes": list(self.notes)} for score in self.scores]


def run_capacity(
    series: IntensitySeries, setup: Setup, capacity: int, vintages: Optional["ForecastVintages"] = None,
    table: Optional[JobTable] = None,
) -> CapacityReport:  # fmt: skip
    policies = setup.policies or cap.DEFAULT_CAPACITY_POLICIES
    cap.check_capacity(capacity, policies)
    grid = to_grid(series)
    first, end = period(grid, setup.since, setup.until)
    draws = forecast_draws(grid, setup, vintages)
    not_before = float(draws[0].issues[0]) if vintages is not None else None
    placement = placed_jobs(grid, setup, table, first, end, not_before)
    jobs = cap.queued(grid, placement.jobs)
    actual = cap.actual_series(grid)
    costs = lambda runs: np.array([slot(job, actual, spans).expected_g for job, spans in zip(jobs, runs)])  # noqa: E731
    base_runs = cap.fcfs(grid, jobs, capacity)
    step = cap.plan_step(grid, placement.jobs)
    arrivals = cap.decision_rows(grid, jobs, None)
    best_runs, best_replans, best_gap, _ = cap.joint(grid, jobs, capacity, cap.Actuals(grid), arrivals, step)
    base, best = costs(base_runs), costs(best_runs)
    runs: dict[tuple[str, int], cap.Runs] = {}
    scores, notes = [], []
    horizon = int((placement.jobs.slack + placement.jobs.duration).max())
    for draw, forecasts in enumerate(draws):
        rows = cap.decision_rows(grid, jobs, forecasts)
        expect = cap.Expectations(grid, forecasts, rows, horizon)
        if expect.fallback_rows and any(policy in ("greedy", "joint", "joint-hedged") for policy in policies):
            notes.append(f"draw {draw}: nowcast: {expect.fallback_rows} of {len(rows)} decisions had less than a day "
                         "of history (or 12 h of deviations) and used the forecast as it is")  # fmt: skip
        for policy in policies:
            if draw > 0 and policy in ("fcfs", "oracle-capacity"):
                continue
            found, replans, gap = base_runs, 0, 0.0
            if policy == "oracle-capacity":
                found, replans, gap = best_runs, best_replans, best_gap
            elif policy == "greedy":
                found = cap.greedy(grid, jobs, capacity, expect)
            elif policy in ("joint", "joint-hedged"):
                hedge = None
                if policy == "joint-hedged":
                    band = cap.ErrorBand(grid, forecasts, rows, horizon)
                    hedge = cap.HedgeToFirstCome(grid, base_runs, band, capacity)
                found, replans, gap, relaxed = cap.joint(grid, jobs, capacity, expect, rows, step, hedge)
                if relaxed:
                    notes.append(
                        f"{policy}, draw {draw}: {relaxed} re-plans could not fit every arrival by its deadline"
                    )
            runs[(policy, draw)] = found
            scores.append(_score(policy, jobs, found, costs(found), base, best, capacity, replans, gap, grid))
    context = {
        "trace": series.region, "from": iso(grid.time(first)), "until": iso(grid.time(end)), "step_seconds": grid.step,
        "workload": table.origin if table is not None else "evenly spaced", "forecast": draws[0].label,
        "seeds": len(draws), "dropped": len(placement.dropped),
    }  # fmt: skip
    return CapacityReport(context, scores, runs, jobs, tuple(notes))


def _score(policy, jobs, runs, grams, base, best, capacity, replans, gap, grid: Grid) -> cap.CapacityScore:
    arrival = np.array([job.arrival for job in jobs])
    start = np.array([spans[0][0] for spans in runs])
    finish = np.array([spans[-1][1] for spans in runs])
    late = int(np.count_nonzero(finish > np.array([job.deadline for job in jobs]) + 1e-6))
    saving = 100.0 * (1.0 - grams.sum() / base.sum()) if base.sum() > 0 else 0.0
    oracle_saving = 100.0 * (1.0 - best.sum() / base.sum()) if best is not None and base.sum() > 0 else 0.0
    day = np.floor(arrival / 86400.0).astype(np.int64)
    days, where = np.unique(day, return_inverse=True)
    per_day, per_day_base = np.bincount(where, grams), np.bincount(where, base)
    tolerance = 1e-9 * np.maximum(per_day_base, 1.0)
    wait = (start - arrival) / 3600.0
    return cap.CapacityScore(
        policy=policy,
        jobs=len(jobs),
        capacity=capacity,
        total_kg=float(grams.sum()) / 1000.0,
        saving_vs_fcfs_pct=float(saving),
        fraction_of_oracle=float(saving / oracle_saving) if oracle_saving > 0 else None,
        deadline_misses=late,
        mean_wait_hours=float(wait.mean()),
        max_wait_hours=float(wait.max()),
        dirtier_than_fcfs=int(np.count_nonzero(grams > base * (1 + 1e-9) + 1e-9)),
        days=len(days),
        days_not_worse=int(np.count_nonzero(per_day <= per_day_base + tolerance)),
        replans=replans,
        largest_gap=float(gap),
    )


def capacity_table(report: CapacityReport) -> str:
    c = report.context
    lines = [
        f"{c['trace']}: {len(report.jobs)} jobs from {c['workload']}, {report.scores[0].capacity} workers; "
        f"{c['from']} to {c['until']}",
        f"forecast: {c['forecast']}" + (f" ({c['seeds']} draws)" if c["seeds"] > 1 else ""),
        "",
        f"{'policy':<17}{'draw':>5}{'total kg':>10}{'vs fcfs %':>10}{'of oracle':>10}{'late':>6}{'wait h':>8}"
        f"{'max h':>7}{'dirtier':>8}{'days ok':>9}{'gap %':>7}",
    ]
    draw = {}
    for s in report.scores:
        draw[s.policy] = draw.get(s.policy, -1) + 1
        fraction = "-" if s.fraction_of_oracle is None else f"{s.fraction_of_oracle:.3f}"
        lines.append(
            f"{s.policy:<17}{draw[s.policy]:>5}{s.total_kg:>10.3f}{s.saving_vs_fcfs_pct:>10.2f}{fraction:>10}"
            f"{s.deadline_misses:>6}{s.mean_wait_hours:>8.1f}{s.max_wait_hours:>7.1f}{s.dirtier_than_fcfs:>8}"
            f"{s.days_not_worse:>5}/{s.days:<3}{100 * s.largest_gap:>7.2f}"
        )
    lines.append(
        "every job at 1 kW; late: finished after its deadline; dirtier: jobs that emitted more than under fcfs;"
    )
    lines.append("days ok: days (by arrival, UTC) whose jobs emitted no more than under fcfs; gap: to the LP bound")
    return "\n".join(lines + [f"note: {note}" for note in report.notes])
