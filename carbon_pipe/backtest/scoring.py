"""Scores: each policy's emissions against the baseline (every job at its nominal start) and the oracle of its kind."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import CarbonPipeError, FieldError
from .forecasts import Forecasts
from .grid import Grid
from .jobs import Jobs
from .policies import INTERRUPTIBLE, ORACLES, POLICIES, Knowledge, Outcome, outcomes


@dataclass(frozen=True)
class PolicyScore:
    """One policy over all jobs; with several forecast draws (seeds), savings are their mean, with the spread."""

    policy: str
    jobs: int
    savings_pct: float
    savings_pct_sd: float
    savings_pct_min: float
    savings_pct_max: float
    oracle_savings_pct: float  # of the oracle of the same kind: oracle-interruptible for interruptible policies
    fraction_of_oracle: Optional[float]
    mean_wait_hours: float  # first start - arrival
    mean_intensity_g_per_kwh: float
    total_kg: float  # every job drawing 1 kW
    mean_kg: float
    baseline_total_kg: float
    baseline_mean_kg: float


@dataclass(frozen=True)
class Evaluation:
    scores: list[PolicyScore]
    baseline: Outcome
    runs: list[tuple[str, Optional[int], Outcome]]  # (policy, draw, outcome), kept only when asked for
    fallback_rows: int  # nowcast decisions made on the bare forecast, over all draws


def check_policies(policies: Sequence[str]) -> None:
    for policy in policies:
        if policy not in POLICIES:
            raise FieldError("policy", f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")


def oracle_of(policy: str) -> str:
    return "oracle-interruptible" if policy in INTERRUPTIBLE else "oracle"


def evaluate(
    policies: Sequence[str], grid: Grid, jobs: Jobs, draws: Sequence[Forecasts], threshold: Optional[float] = None,
    min_chunk: int = 1, keep_runs: bool = False,
) -> Evaluation:  # fmt: skip
    """Score the policies on the same jobs, once per set of forecasts (the oracles need none and run once)."""
    check_policies(policies)
    if min_chunk < 1:
        raise FieldError("minimum chunk", "must be at least one trace step")
    prefix = grid.cumulative()
    baseline = Outcome.of_starts(jobs.nominal, jobs, prefix)
    needed = list(dict.fromkeys([*policies, *(oracle_of(policy) for policy in policies)]))
    knowing = [policy for policy in needed if policy not in ORACLES and policy != "now"]
    fixed = outcomes([p for p in needed if p not in knowing], jobs, Knowledge(grid, draws[0], 1), threshold, min_chunk)
    per_draw, fallback_rows = [], 0
    for forecasts in draws if knowing else []:
        knowledge = Knowledge(grid, forecasts, int(jobs.span.max()))
        per_draw.append(outcomes(knowing, jobs, knowledge, threshold, min_chunk))
        fallback_rows += knowledge.fallback_rows
    results = {policy: [fixed[policy]] if policy in fixed else [draw[policy] for draw in per_draw] for policy in needed}
    scores = [_score(policy, results, baseline, jobs, grid.step) for policy in policies]
    runs = [] if not keep_runs else [
        (policy, None if policy in fixed else draw, outcome)
        for policy in policies for draw, outcome in enumerate(results[policy])
    ]  # fmt: skip
    return Evaluation(scores, baseline, runs, fallback_rows)


def _score(policy: str, results: dict[str, list[Outcome]], baseline: Outcome, jobs: Jobs, step: float) -> PolicyScore:
    kg = step / 3600 / 1000  # g/kWh x points -> kg at 1 kW
    base = float(baseline.cost.sum())
    totals = np.array([float(outcome.cost.sum()) for outcome in results[policy]])
    savings = 100.0 * (1.0 - totals / base) if base > 0 else np.zeros(len(totals))
    oracle = results[oracle_of(policy)][0]
    oracle_savings = 100.0 * (1.0 - float(oracle.cost.sum()) / base) if base > 0 else 0.0
    mean = float(savings.mean())
    waits = [float((outcome.first_start() - jobs.arrival).mean()) for outcome in results[policy]]
    score = PolicyScore(
        policy=policy,
        jobs=len(jobs),
        savings_pct=mean,
        savings_pct_sd=float(savings.std(ddof=1)) if len(savings) > 1 else 0.0,
        savings_pct_min=float(savings.min()),
        savings_pct_max=float(savings.max()),
        oracle_savings_pct=oracle_savings,
        fraction_of_oracle=mean / oracle_savings if oracle_savings > 0 else None,
        mean_wait_hours=float(np.mean(waits)) * step / 3600,
        mean_intensity_g_per_kwh=float(totals.mean()) / float(jobs.duration.sum()),
        total_kg=float(totals.mean()) * kg,
        mean_kg=float(totals.mean()) * kg / len(jobs),
        baseline_total_kg=base * kg,
        baseline_mean_kg=base * kg / len(jobs),
    )
    _check_finite(score)
    return score


def _check_finite(score: PolicyScore) -> None:
    """The backtest's own arithmetic never hands on an inf or a NaN: one clear line instead."""
    for name, value in vars(score).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise CarbonPipeError(
                f"backtest: {score.policy}: {name} is {value} (a sum overflowed); the trace's values are too large"
            )
