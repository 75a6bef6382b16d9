"""compare's two files, one model each: metrics/comparison.json (`Comparison`: the runs side by side and the
reduction split by cause) and metrics/summary.json (`KeyMetrics`: the flat numbers `dvc metrics diff` and
`dvc exp show` put in columns). Both are built once, complete, by the compare stage, and written by `write_model`.

Method fields are short identifiers; docs/reference/artifacts.md and the report say what each means.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from ..artifacts import Flag, Number
from ..intensity.horizon import FailedSource
from ..training.run_summary import AutoChoice, SciMetrics, Section

Bounds = Optional[list[Optional[float]]]  # a 95 % interval [low, high]; a null bound is unbounded


class CarbonSavings(Section):
    """The reduction in emissions, from the runs' energy intervals."""

    baseline_emissions_kg: Number = Field(description="the baseline's emissions over its intervals (kg CO2e)")
    optimized_emissions_kg: Number = Field(description="the optimized run's, its profile and idle included (kg)")
    reduction_kg: Number = Field(description="baseline - optimized (kg)")
    reduction_percentage: Optional[Number] = Field(description="the reduction in % of the baseline's")


class EnergySavings(Section):
    """The reduction in energy, and what the profile cost."""

    baseline_kwh: Optional[Number] = Field(description="the baseline's energy (kWh)")
    optimized_kwh: Optional[Number] = Field(description="the optimized run's energy (kWh)")
    reduction_kwh: Optional[Number] = Field(description="baseline - optimized (kWh)")
    reduction_percentage: Optional[Number] = Field(description="the reduction in % of the baseline's")
    method: str = Field(description="the optimized run's carbon_metrics.energy_method")
    profiling_kwh: Number = Field(description="the optimized run's profile phase (kWh)")
    profiling_percentage_of_baseline: Optional[Number] = Field(description="profiling_kwh in % of the baseline's")


class EffectSplit(Section):
    """The reduction split by cause: reduction = schedule + configuration + remainder - profiling - held idle."""

    schedule_effect_kg: Number = Field(
        description="*when* it ran: its training at the baseline's start minus where it ran (kg)"
    )
    schedule_effect_kg_ci95: Bounds = Field(description="scaled by the energy-per-sample interval (kg)")
    configuration_effect_kg: Optional[Number] = Field(
        description="*how* it trained: baseline x (1 - ratio) (kg); null: not profiled"
    )
    configuration_effect_kg_ci95: Bounds = Field(description="from the ratio's 95 % interval (kg)")
    configuration_ratio: Optional[Number] = Field(description="optimized / baseline energy per sample (paired)")
    configuration_ratio_ci95: Bounds = Field(description="the ratio's 95 % sequential interval")
    verdict: Optional[str] = Field(description="less, more or no measurable difference; null: not profiled")
    verdict_text: str = Field(description="the verdict in words, or why there is none")
    configuration_effect_naive_kg: Number = Field(
        description="two runs: baseline minus the optimized training at the baseline's start (kg)"
    )
    remainder_kg: Optional[Number] = Field(description="naive minus paired: run-to-run noise (kg)")
    profiling_overhead_kg: Number = Field(description="the profile's emissions, charged to the optimized run (kg)")
    held_idle_kg: Number = Field(description="hardware held idle through real-clock pauses (kg)")
    optimized_training_at_baseline_start_kg: Number = Field(
        description="the optimized training placed at the baseline's start (kg)"
    )
    optimized_training_kg: Number = Field(description="the optimized run's training phase where it ran (kg)")
    schedule_effect_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    configuration_effect_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    configuration_effect_naive_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    remainder_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    profiling_overhead_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    held_idle_percentage: Optional[Number] = Field(description="in % of the baseline's emissions")
    method: Literal["baseline-start-shift+paired-profile"] = Field(
        description="schedule: the optimized training shifted to the baseline's start; configuration: the paired "
        "profile's ratio applied to the baseline"
    )


class NoiseBand(Section):
    """How far two runs of the same params and code may land apart (`carbon-pipe diff` uses it)."""

    energy_noise_pct: Optional[Number] = Field(description="95 % band of two runs' relative energy difference (%)")
    time_noise_pct: Optional[Number] = Field(description="the same for time (%)")
    method: Literal["profile-process-spread"] = Field(
        description="Student's t x sqrt(2) x the baseline's coefficient of variation per sample between the "
        "profile's fresh processes"
    )


class AccuracyImpact(Section):
    """Test accuracy of the two runs."""

    baseline_accuracy: Optional[Number] = Field(description="(%)")
    optimized_accuracy: Optional[Number] = Field(description="(%)")
    difference_points: Optional[Number] = Field(description="optimized - baseline (percentage points)")


class MemorySavings(Section):
    """Peak memory of the two runs."""

    baseline_peak_mb: Optional[Number] = Field(description="(MB)")
    optimized_peak_mb: Optional[Number] = Field(description="(MB)")
    reduction_mb: Optional[Number] = Field(description="baseline - optimized (MB)")
    reduction_percentage: Optional[Number] = Field(description="in % of the baseline's")
    method: str = Field(description="the optimized run's memory_metrics.method")


class TimeSideBySide(Section):
    """Training time of the two runs, and the optimized run's wait and pauses."""

    baseline_seconds: Number = Field(description="the baseline's training time (s)")
    optimized_seconds: Number = Field(description="the optimized run's training time (s)")
    difference_seconds: Number = Field(description="optimized - baseline (s)")
    optimized_wait_seconds: Number = Field(description="the optimized run's wait from submission (s)")
    optimized_paused_seconds: Number = Field(description="its pauses between chunks (s)")


class Labels(Section):
    """What every number carries: the clock, the intensity source, how energy was measured."""

    clock: Literal["simulated", "real"] = Field(description="the pipeline clock")
    simulated_clock: Flag = Field(description="waits computed, not slept")
    intensity_source: str = Field(description="the source of the horizon's intensities")
    intensity_source_failures: list[FailedSource] = Field(description="sources that failed before it served")
    energy_method: str = Field(description="the optimized run's carbon_metrics.energy_method")
    baseline_precision: Optional[str] = Field(description="the precision the baseline trained in")
    optimized_precision: Optional[str] = Field(description="the precision the optimized run trained in")


class SciPair(Section):
    """Both runs' SCI sections."""

    baseline: SciMetrics
    optimized: SciMetrics


class Comparison(Section):
    """The two runs side by side, and the reduction split by cause."""

    comparable: Flag = Field(description="both runs' energy is known")
    carbon_savings: Optional[CarbonSavings] = Field(None, description="comparable runs only")
    energy: Optional[EnergySavings] = Field(None, description="comparable runs only")
    decomposition: Optional[EffectSplit] = Field(None, description="comparable runs only")
    noise: Optional[NoiseBand] = Field(None, description="comparable runs only")
    not_comparable_reason: Optional[str] = Field(None, description="runs that are not comparable: why")
    accuracy_impact: AccuracyImpact
    memory_savings: MemorySavings
    time: TimeSideBySide
    labels: Labels
    sci: SciPair
    optimized_choice: Optional[AutoChoice] = Field(description="optimized.choose auto: the candidates and why")


def _key(description: str) -> Any:
    return Field(None, description=description)


class KeyMetrics(Section):
    """metrics/summary.json: its keys are what `dvc metrics diff` shows, kept stable (docs/changelog.md)."""

    baseline_co2_g: Optional[Number] = _key("the baseline's emissions (g CO2e)")
    optimized_co2_g: Optional[Number] = _key("the optimized run's emissions (g CO2e)")
    co2_reduction_pct: Optional[Number] = _key("the reduction in % of the baseline's")
    schedule_effect_g: Optional[Number] = _key("*when* it ran (g)")
    schedule_effect_g_low: Optional[Number] = _key("its 95 % interval's low end (g)")
    schedule_effect_g_high: Optional[Number] = _key("its 95 % interval's high end (g)")
    configuration_effect_g: Optional[Number] = _key("*how* it trained, paired profile (g)")
    configuration_effect_g_low: Optional[Number] = _key("(g)")
    configuration_effect_g_high: Optional[Number] = _key("(g)")
    configuration_ratio: Optional[Number] = _key("optimized / baseline energy per sample")
    configuration_ratio_low: Optional[Number] = _key("the ratio's 95 % interval, low end")
    configuration_ratio_high: Optional[Number] = _key("high end")
    configuration_effect_naive_g: Optional[Number] = _key("the naive two-run configuration effect (g)")
    remainder_g: Optional[Number] = _key("naive minus paired: run-to-run noise (g)")
    profiling_overhead_g: Optional[Number] = _key("the profile's emissions (g)")
    profiling_energy_pct_of_baseline: Optional[Number] = _key("the profile's energy in % of the baseline's")
    held_idle_g: Optional[Number] = _key("hardware held idle through pauses (g)")
    baseline_energy_wh: Optional[Number] = _key("(Wh)")
    optimized_energy_wh: Optional[Number] = _key("(Wh)")
    energy_reduction_pct: Optional[Number] = _key("in % of the baseline's")
    baseline_sci_g_per_run: Optional[Number] = _key("SCI per run (g CO2e)")
    optimized_sci_g_per_run: Optional[Number] = _key("SCI per run (g CO2e)")
    baseline_sci_g_per_1000_samples: Optional[Number] = _key("SCI per 1,000 samples (g CO2e)")
    optimized_sci_g_per_1000_samples: Optional[Number] = _key("SCI per 1,000 samples (g CO2e)")
    baseline_sci_embodied_g: Optional[Number] = _key("M, the embodied share (g CO2e)")
    optimized_sci_embodied_g: Optional[Number] = _key("M, the embodied share (g CO2e)")
    baseline_accuracy_pct: Optional[Number] = _key("(%)")
    optimized_accuracy_pct: Optional[Number] = _key("(%)")
    baseline_peak_memory_mb: Optional[Number] = _key("(MB)")
    optimized_peak_memory_mb: Optional[Number] = _key("(MB)")
    memory_reduction_pct: Optional[Number] = _key("in % of the baseline's")
    baseline_time_s: Optional[Number] = _key("training time (s)")
    optimized_time_s: Optional[Number] = _key("training time (s)")
    optimized_wait_h: Optional[Number] = _key("the optimized run's wait from submission (h)")
    energy_noise_pct: Optional[Number] = _key("95 % band of two runs' relative energy difference (%)")
    time_noise_pct: Optional[Number] = _key("the same for time (%)")

    def to_json(self) -> dict[str, Any]:
        """Every key, null where a figure is unknown: dvc's columns stay the same from run to run."""
        return self.model_dump(mode="json")
