"""The backtest's report as text, and one row per job and policy for a per-job file."""

from __future__ import annotations

from itertools import repeat
from typing import Iterator

import numpy as np

from ..timeutil import format_duration
from .runner import Report

LISTED_DROPS = 20  # in the text table; the JSON lists every one


def as_table(report: Report) -> str:
    """A plain-text table of the scores under a short description of the setup."""
    first = report.as_dicts()[0]
    jobs = f"{first['jobs']} jobs"
    if first["duration_hours"] is not None:
        jobs += (
            f" of {first['duration_hours']:g} h, slack {first['slack_hours']:g} h, one every {first['every_hours']:g} h"
        )
    else:
        jobs += f" from {first['workload']}"
    lines = [
        f"{first['trace']}: {jobs}; trace step {format_duration(first['step_seconds'])}, "
        f"{first['from']} to {first['until']}",
        f"forecast: {first['forecast']}",
        f"baseline (every job at its nominal start, 1 kW each): {first['baseline_total_kg']:.3f} kg CO2, "
        f"{first['baseline_mean_kg']:.4f} kg per job",
        "",
        f"{'policy':<22}{'savings %':>10}{'sd':>6}{'oracle %':>10}{'of oracle':>11}{'wait h':>8}{'g/kWh':>8}"
        f"{'total kg':>11}",
    ]
    for r in report.as_dicts():
        fraction = "-" if r["fraction_of_oracle"] is None else f"{r['fraction_of_oracle']:.3f}"
        spread = f"{r['savings_pct_sd']:.2f}" if r["seeds"] > 1 else "-"
        lines.append(
            f"{r['policy']:<22}{r['savings_pct']:>10.2f}{spread:>6}{r['oracle_savings_pct']:>10.2f}{fraction:>11}"
            f"{r['mean_wait_hours']:>8.1f}{r['mean_intensity_g_per_kwh']:>8.1f}{r['total_kg']:>11.3f}"
        )
    lines += [f"note: {note}" for note in report.notes]
    lines += _dropped_lines(report)
    return "\n".join(lines)


def _dropped_lines(report: Report) -> list[str]:
    dropped = report.placement.dropped
    if not dropped:
        return []
    lines = [f"dropped {len(dropped)} jobs (not scored):"]
    lines += [f"  {job}: {reason}" for job, reason in dropped[:LISTED_DROPS]]
    if len(dropped) > LISTED_DROPS:
        lines.append(f"  ... and {len(dropped) - LISTED_DROPS} more (the JSON lists them all)")
    return lines


PER_JOB_COLUMNS = ("id", "policy", "seed", "start", "finish", "runs", "wait_hours", "emissions_kg", "baseline_kg")


def per_job_rows(report: Report) -> Iterator[tuple]:
    """One row per job, policy and forecast draw (no draw for the policies that need no forecast)."""
    grid, jobs = report.grid, report.placement.jobs
    kg = grid.step / 3600 / 1000
    baseline = report.evaluation.baseline.cost * kg
    for policy, draw, outcome in report.evaluation.runs:
        starts, ends = iso_utc(grid.time(outcome.start)), iso_utc(grid.time(outcome.start + outcome.length))
        spans = np.char.add(np.char.add(starts, "/"), ends).astype(object)
        bounds = np.searchsorted(outcome.job, np.arange(len(jobs) + 1))
        runs = spans[bounds[:-1]]
        for j in np.flatnonzero(np.diff(bounds) > 1):
            runs[j] = ";".join(spans[bounds[j] : bounds[j + 1]])
        wait = np.round((outcome.first_start() - jobs.arrival) * grid.step / 3600, 6)
        seed = "" if draw is None else report.context["seed"] + draw
        yield from zip(
            jobs.ids,
            repeat(policy),
            repeat(seed),
            starts[bounds[:-1]],
            ends[bounds[1:] - 1],
            runs,
            wait,
            outcome.cost * kg,
            baseline,
        )


def iso_utc(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ISO-8601 UTC strings to the second, for many times at once."""
    return np.char.add(np.datetime_as_string(np.round(seconds).astype("datetime64[s]"), unit="s"), "Z")
