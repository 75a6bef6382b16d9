"""The savings split by cause, each estimate with its interval, and what the parts leave over.

- schedule effect: the optimized run's training placed at the baseline's start (the run in one go: its profile
  before it, no pauses) minus the same training where it ran; its interval scales it by the relative width of the
  trained configuration's energy-per-sample interval (the uncertainty of the energy it is computed from).
- configuration effect: the paired profile's ratio applied to the baseline's measured emissions,
  baseline x (1 - ratio), its interval from the ratio's.
- the naive two-run configuration effect: the baseline minus the optimized training at the baseline's start, as
  compare reported before the profile; it holds each run's own timing noise.
- the costs charged to the optimized run besides training: its profile and the hardware it held idle.

They add up: reduction = schedule + naive - profile - held idle, exactly; and naive = configuration + remainder, the
remainder being the two runs' run-to-run noise around the paired estimate.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd

from ..emissions.accounting import IDLE, PROFILE, TRAINING, Decomposition, profile_emissions_kg, without_pauses
from ..intensity.series import IntensitySeries
from ..profiling.record import RunProfile
from .summaries import EffectSplit


def phase_kg(frame: pd.DataFrame, phase: str) -> float:
    return float(frame.loc[frame["phase"] == phase, "emissions_kg"].sum())


def training_at_baseline_start(opt_iv: pd.DataFrame, series: IntensitySeries, baseline_start: float) -> float:
    """The optimized run in one go from the baseline's start (its intervals, held-idle ones left out, back to back
    in order), and the emissions of its training there."""
    run = opt_iv[opt_iv["phase"] != IDLE]
    starts, ends = without_pauses(run["start_s"].to_numpy(), run["end_s"].to_numpy())
    training = (run["phase"] == TRAINING).to_numpy()
    shift = baseline_start - starts.min()
    return profile_emissions_kg(series, starts[training], ends[training], run["energy_kwh"].to_numpy()[training], shift)


def scaled(value: float, low_factor: float, high_factor: float) -> list[float]:
    return sorted([value * low_factor, value * high_factor])


def effects(
    base_iv: pd.DataFrame, opt_iv: pd.DataFrame, series: IntensitySeries, baseline_start: float,
    profile: Optional[RunProfile], not_profiled: Optional[str] = None,
) -> EffectSplit:
    """The decomposition of the reduction, every figure re-derivable from the intervals and the profile."""
    base_kg, training_kg = float(base_iv["emissions_kg"].sum()), phase_kg(opt_iv, TRAINING)
    at_start = training_at_baseline_start(opt_iv, series, baseline_start)
    overheads = phase_kg(opt_iv, PROFILE) + phase_kg(opt_iv, IDLE)
    parts = Decomposition(base_kg, training_kg, at_start, overheads)
    schedule, naive = parts.schedule_effect_kg, parts.configuration_effect_kg
    split = {
        "schedule_effect_kg": schedule,
        "schedule_effect_kg_ci95": None,
        "configuration_effect_kg": None,
        "configuration_effect_kg_ci95": None,
        "configuration_ratio": None,
        "configuration_ratio_ci95": None,
        "verdict": None,
        "verdict_text": not_profiled or "not profiled",
        "configuration_effect_naive_kg": naive,
        "remainder_kg": None,
        "profiling_overhead_kg": phase_kg(opt_iv, PROFILE),
        "held_idle_kg": phase_kg(opt_iv, IDLE),
        "optimized_training_at_baseline_start_kg": at_start,
        "optimized_training_kg": training_kg,
    }
    if profile is not None:
        ratio, energy = profile.ratio, profile.profile.configuration(profile.trained).j_per_sample
        low, high = ratio.bounds  # None: unbounded
        configuration = base_kg * (1 - ratio.value)
        split.update(
            schedule_effect_kg_ci95=scaled(schedule, energy.low / energy.value, energy.high / energy.value)
            if energy.value > 0 else None,  # a counter that never moved gives no relative width
            configuration_effect_kg=configuration,
            configuration_effect_kg_ci95=[None if high is None else base_kg * (1 - high),
                                          None if low is None else base_kg * (1 - low)],
            configuration_ratio=ratio.value,
            configuration_ratio_ci95=[low, high],
            verdict=profile.verdict,
            verdict_text=profile.verdict_text(),
            remainder_kg=naive - configuration,
        )
    percentages = {
        f"{key.removesuffix('_kg')}_percentage": 100 * split[key] / base_kg if base_kg and split[key] is not None
        else None
        for key in ("schedule_effect_kg", "configuration_effect_kg", "configuration_effect_naive_kg", "remainder_kg",
                    "profiling_overhead_kg", "held_idle_kg")
    }
    return EffectSplit(**split, **percentages, method="baseline-start-shift+paired-profile")


# What EffectSplit's method identifier stands for, part by part: the report says it under the savings table.
METHOD = {
    "schedule_effect": (
        "the optimized run's training placed at the baseline's start (the run in one go: its profile first, no "
        "pauses) minus the same training where it ran; interval: scaled by the trained configuration's "
        "energy-per-sample interval relative to its value"
    ),
    "configuration_effect": (
        "the paired profile's ratio (optimized / baseline energy per training sample) applied to the baseline's "
        "measured emissions: baseline x (1 - ratio); interval from the ratio's 95 % interval"
    ),
    "configuration_effect_naive": (
        "two runs: the baseline minus the optimized training placed at the baseline's start; it holds each run's "
        "timing noise"
    ),
    "remainder": "naive two-run difference minus the paired estimate: run-to-run noise",
    "adds_up": (
        "reduction = schedule effect + configuration effect + remainder - profiling overhead - held idle "
        "(the last two as charged, at the intensity of when they ran)"
    ),
}
