"""How long the job will run: from params, or scaled from the last measured run (`expected_duration: auto`).

auto reads metrics/optimized.json, the last run of the configuration wait-for-window schedules, only if it is
there. It is deliberately not a DVC dependency of wait-for-window (the train stages depend on wait-for-window, so
it would be a cycle); instead the decision records which figure was used and how it was derived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..datasets.catalog import DATASETS
from ..layout import run_metrics
from ..params import Params


@dataclass(frozen=True)
class DurationEstimate:
    seconds: float
    source: str  # params | estimated | fallback
    basis: str  # how, in words


def expected_duration(params: Params, last_run: Path = run_metrics("optimized")) -> DurationEstimate:
    configured = params.scheduler.expected_duration
    if configured != "auto":
        return DurationEstimate(float(configured), "params", "scheduler.expected_duration")

    def fallback(why: str) -> DurationEstimate:
        return DurationEstimate(params.scheduler.fallback_duration, "fallback", f"scheduler.fallback_duration ({why})")

    if not last_run.is_file():
        return fallback(f"no measured run yet: {last_run} is missing")
    try:
        measured = json.loads(last_run.read_text(encoding="utf-8"))["training_metrics"]
        seconds, epochs, samples = (
            float(measured["total_time_seconds"]),
            int(measured["epochs"]),
            int(measured["train_samples"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return fallback(f"{last_run} has no usable training_metrics.total_time_seconds, epochs and train_samples")
    if min(seconds, epochs, samples) <= 0:
        return fallback(f"{last_run} records no training time")
    full = DATASETS[params.data.dataset].train_samples
    wanted = min(params.data.train_limit or full, full)
    per_sample = seconds / (epochs * samples)
    return DurationEstimate(
        per_sample * wanted * params.train.epochs,
        "estimated",
        f"estimated from {last_run}: {seconds:.1f} s for {epochs} epoch(s) x {samples} samples "
        f"({per_sample * 1e3:.4g} ms per sample), scaled to {params.train.epochs} x {wanted}",
    )
