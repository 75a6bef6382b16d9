"""The compare stage: before/after numbers, re-derived from the runs' own artifacts, and the savings split in two."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Optional

import pandas as pd

from ..artifacts import write_csv
from ..emissions.accounting import PROFILE
from ..intensity.horizon import Horizon
from ..intensity.series import IntensitySeries
from ..layout import (
    CUMULATIVE_CSV,
    CUMULATIVE_PNG,
    EPOCHS_CSV,
    EPOCHS_PNG,
    RUNS,
    TIMELINE_CSV,
    TIMELINE_PNG,
    run_profile_file,
)
from ..profiling.record import RunProfile, read_run_profile
from ..scheduling.decision import Decision
from ..timeutil import format_duration, iso
from ..training.run_summary import RunSummary
from . import charts
from .effects import effects
from .plot_data import cumulative_emissions, cumulative_frame, epochs_frame, run_span, timeline_frame, window_spans
from .runs import load_intervals, read_run_csv
from .sections import choice_section, savings_section, sci_section
from .summaries import (
    AccuracyImpact,
    CarbonSavings,
    Comparison,
    EnergySavings,
    KeyMetrics,
    Labels,
    MemorySavings,
    NoiseBand,
    SciPair,
    TimeSideBySide,
)


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _difference(base: float | None, opt: float | None) -> float | None:
    """base - opt, or None when either was not measured or not reported (a command run's figures may be null)."""
    return None if base is None or opt is None else base - opt


def _reduction_pct(base: float | None, opt: float | None) -> float | None:
    reduction = _difference(base, opt)
    return None if reduction is None else _pct(reduction, base)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _clock_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%H:%M UTC")


def read_profile(optimized: RunSummary) -> tuple[Optional[RunProfile], Optional[str]]:
    """The optimized run's profile, or why it has none (a torchrun job; a run driven by another script)."""
    if optimized.profile is None:
        return None, "not profiled: the optimized run's summary has no profile"
    if optimized.profile.skipped:
        return None, optimized.profile.skipped
    return read_run_profile(run_profile_file("optimized")), None


def noise_band(profile: Optional[RunProfile]) -> NoiseBand:
    """How far apart two runs of the same params and code may land, from the profile's spread between processes
    (`carbon-pipe diff` marks differences inside it as noise)."""
    return NoiseBand(
        energy_noise_pct=profile.profile.run_to_run_band_pct("joules") if profile else None,
        time_noise_pct=profile.profile.run_to_run_band_pct("seconds") if profile else None,
        method="profile-process-spread",
    )


def compare(baseline: RunSummary, optimized: RunSummary, series: IntensitySeries) -> Comparison:
    base_iv, opt_iv = load_intervals("baseline"), load_intervals("optimized")
    comparable = bool(len(base_iv)) and bool(len(opt_iv))
    parts: dict = {"comparable": comparable}
    if comparable:
        profile, not_profiled = read_profile(optimized)
        parts.update(savings(optimized, base_iv, opt_iv))
        baseline_start = baseline.scheduler_metrics.start
        parts["decomposition"] = effects(base_iv, opt_iv, series, baseline_start, profile, not_profiled)
        parts["noise"] = noise_band(profile)
    else:
        reasons = [
            f"{name}: {summary.carbon_metrics.energy_error or 'no energy intervals'}"
            for name, summary, frame in (("baseline", baseline, base_iv), ("optimized", optimized, opt_iv))
            if not len(frame)
        ]
        parts["not_comparable_reason"] = "energy unknown for " + "; ".join(reasons)
    return Comparison(
        **parts,
        **side_by_side(baseline, optimized, series),
        sci=SciPair(baseline=baseline.sci, optimized=optimized.sci),
        optimized_choice=optimized.profile.choice if optimized.profile else None,
    )


def savings(optimized: RunSummary, base_iv: pd.DataFrame, opt_iv: pd.DataFrame) -> dict:
    """The reduction in CO2 and energy, and the profiling energy against the baseline's."""
    base_kg, opt_kg = float(base_iv["emissions_kg"].sum()), float(opt_iv["emissions_kg"].sum())
    base_kwh, opt_kwh = float(base_iv["energy_kwh"].sum()), float(opt_iv["energy_kwh"].sum())
    profiling_kwh = float(opt_iv.loc[opt_iv["phase"] == PROFILE, "energy_kwh"].sum())
    return {
        "carbon_savings": CarbonSavings(
            baseline_emissions_kg=base_kg,
            optimized_emissions_kg=opt_kg,
            reduction_kg=base_kg - opt_kg,
            reduction_percentage=_pct(base_kg - opt_kg, base_kg),
        ),
        "energy": EnergySavings(
            baseline_kwh=base_kwh,
            optimized_kwh=opt_kwh,
            reduction_kwh=base_kwh - opt_kwh,
            reduction_percentage=_reduction_pct(base_kwh, opt_kwh),
            method=optimized.carbon_metrics.energy_method,
            profiling_kwh=profiling_kwh,
            profiling_percentage_of_baseline=_pct(profiling_kwh, base_kwh),
        ),
    }


def side_by_side(baseline: RunSummary, optimized: RunSummary, series: IntensitySeries) -> dict:
    """Accuracy, peak memory and time of the two runs, and the labels every number carries."""
    base_acc, opt_acc = baseline.training_metrics.final_accuracy, optimized.training_metrics.final_accuracy
    base_mem, opt_mem = baseline.memory_metrics.peak_memory_mb, optimized.memory_metrics.peak_memory_mb
    base_t, opt_t = baseline.training_metrics.total_time_seconds, optimized.training_metrics.total_time_seconds
    scheduled = optimized.scheduler_metrics
    return {
        "accuracy_impact": AccuracyImpact(
            baseline_accuracy=base_acc, optimized_accuracy=opt_acc, difference_points=_difference(opt_acc, base_acc)
        ),
        "memory_savings": MemorySavings(
            baseline_peak_mb=base_mem,
            optimized_peak_mb=opt_mem,
            reduction_mb=_difference(base_mem, opt_mem),
            reduction_percentage=_reduction_pct(base_mem, opt_mem),
            method=optimized.memory_metrics.method,
        ),
        "time": TimeSideBySide(
            baseline_seconds=base_t,
            optimized_seconds=opt_t,
            difference_seconds=opt_t - base_t,
            optimized_wait_seconds=scheduled.wait_seconds,
            optimized_paused_seconds=scheduled.paused_seconds or 0.0,
        ),
        "labels": Labels(
            clock=scheduled.clock,
            simulated_clock=scheduled.simulated_clock,
            intensity_source=series.source,
            intensity_source_failures=optimized.carbon_metrics.intensity_source_failures,
            energy_method=optimized.carbon_metrics.energy_method,
            baseline_precision=baseline.precision,
            optimized_precision=optimized.precision,
        ),
    }


def key_metrics(result: Comparison, baseline: RunSummary, optimized: RunSummary) -> KeyMetrics:
    """The numbers `dvc metrics diff` and `dvc exp show` put in columns: flat, numeric, in readable units.

    Everything else (labels, methods, notes) stays in comparison.json and the runs' summaries.
    """
    runs = {"baseline": baseline, "optimized": optimized}

    def per_run(name: str, figure: Callable[[RunSummary], Optional[float]], factor: float = 1.0) -> dict:
        return {f"{run}_{name}": _scaled(figure(summary), factor) for run, summary in runs.items()}

    split, energy, noise = result.decomposition, result.energy, result.noise

    def with_interval(name: str, part: str, factor: float = 1000) -> dict:
        value = getattr(split, part) if split else None
        bounds = (getattr(split, f"{part}_ci95") if split else None) or (None, None)
        return {
            name: _scaled(value, factor),
            f"{name}_low": _scaled(bounds[0], factor),
            f"{name}_high": _scaled(bounds[1], factor),
        }

    def effect(part: str) -> Optional[float]:
        return _scaled(getattr(split, part), 1000) if split else None

    return KeyMetrics(
        **per_run("co2_g", lambda run: run.carbon_metrics.total_emissions_kg, 1000),
        co2_reduction_pct=result.carbon_savings.reduction_percentage if result.carbon_savings else None,
        **with_interval("schedule_effect_g", "schedule_effect_kg"),
        **with_interval("configuration_effect_g", "configuration_effect_kg"),
        **with_interval("configuration_ratio", "configuration_ratio", 1.0),
        configuration_effect_naive_g=effect("configuration_effect_naive_kg"),
        remainder_g=effect("remainder_kg"),
        profiling_overhead_g=effect("profiling_overhead_kg"),
        profiling_energy_pct_of_baseline=energy.profiling_percentage_of_baseline if energy else None,
        held_idle_g=effect("held_idle_kg"),
        **per_run("energy_wh", lambda run: run.carbon_metrics.energy_consumed_kwh, 1000),
        energy_reduction_pct=energy.reduction_percentage if energy else None,
        **per_run("sci_g_per_run", lambda run: run.sci.per_run_g),
        **per_run("sci_g_per_1000_samples", lambda run: run.sci.per_1000_samples_g),
        **per_run("sci_embodied_g", lambda run: run.sci.embodied_g),
        **per_run("accuracy_pct", lambda run: run.training_metrics.final_accuracy),
        **per_run("peak_memory_mb", lambda run: run.memory_metrics.peak_memory_mb),
        memory_reduction_pct=result.memory_savings.reduction_percentage,
        **per_run("time_s", lambda run: run.training_metrics.total_time_seconds),
        optimized_wait_h=result.time.optimized_wait_seconds / 3600,
        energy_noise_pct=noise.energy_noise_pct if noise else None,
        time_noise_pct=noise.time_noise_pct if noise else None,
    )


def _ran_in(summary: RunSummary) -> str:
    scheduled = summary.scheduler_metrics
    if not scheduled.chunks:
        return "one go"
    return f"{len(scheduled.chunks)} chunks, paused {format_duration(scheduled.paused_seconds or 0.0)} in all"


def _fmt(value, spec: str = ".4g") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def _milli(value) -> str:  # kg -> g, kWh -> Wh: fewer leading zeros
    return _fmt(_scaled(value, 1000))


def _reported(value, spec: str = ".4g") -> str:
    """A run's own figure: one a command run did not report is said to be so."""
    return "not reported" if value is None else f"{value:{spec}}"


# What the method identifiers of the runs' summaries stand for, as the report says it (docs/accounting.md).
ENERGY_METHODS = {
    "process-tree-model": "the process tree's own CPU time x CodeCarbon's TDP per logical CPU, and its resident "
    "memory x 0.375 W/GB (a model: no RAPL counter)",
    "rapl": "RAPL counters (measured)",
    "cpu-load-model": "CodeCarbon's CPU-load x TDP model (an estimate, no RAPL)",
    "constant-tdp": "CodeCarbon's constant TDP (an estimate)",
    "unknown": "unknown (the meter failed)",
}
MEMORY_METHODS = {
    "cuda-allocator-peak": "CUDA's caching allocator, max_memory_allocated after a reset at the run's start",
    "peak-rss-since-training": "the process's peak resident memory since training began (VmHWM, reset then): the "
    "Python/PyTorch runtime and the dataset included",
    "peak-rss-since-start": "the process's peak resident memory since it started (ru_maxrss)",
    "command-tree-rss": "the largest resident memory of the command's process tree, summed over its processes and "
    "sampled every second (its runtime and data included)",
    "reported-by-command": "reported by the command (peak_memory_mb)",
    "not-measured": "not measured: the command ended before its first memory sample",
}


def describe_energy(method: str) -> str:
    base, _, gpu = method.partition("+")
    return ENERGY_METHODS.get(base, base) + ("; GPU: NVML (measured)" if gpu else "") + f" (`{method}`)"


def _runs_table(result: Comparison, baseline: RunSummary, optimized: RunSummary) -> list[str]:
    """The two runs side by side, and how each figure was obtained."""
    labels = result.labels

    def row(label: str, value) -> str:
        return f"| {label} | {value(baseline)} | {value(optimized)} |"

    memory = result.memory_savings.method
    return [
        "# carbon-pipe: baseline vs optimized",
        "",
        f"- Clock: **{labels.clock}**" + (" (the wait was computed, not slept)" if labels.simulated_clock else ""),
        f"- Grid intensity source: **{labels.intensity_source}**"
        + "".join(f" (after {f.source} failed: {f.error})" for f in labels.intensity_source_failures),
        f"- Energy measured by: {describe_energy(labels.energy_method)}",
        "- Emissions = sum over measurement intervals of energy x grid intensity at that interval's time "
        "(see `stages/train-*/energy_intervals.csv`).",
        "",
        "| | baseline | optimized |",
        "|---|---|---|",
        row(
            "batch x accumulation",
            lambda run: (
                "not reported"
                if run.batch_size is None
                else f"{run.batch_size} x {_reported(run.gradient_accumulation_steps, '')}"
            ),
        ),
        f"| precision | {_reported(labels.baseline_precision, '')} | {_reported(labels.optimized_precision, '')} |",
        row("start (pipeline clock)", lambda run: iso(run.scheduler_metrics.start)),
        row("ran in", _ran_in),
        row("CO2 (g)", lambda run: _milli(run.carbon_metrics.total_emissions_kg)),
        row("energy (Wh)", lambda run: _milli(run.carbon_metrics.energy_consumed_kwh)),
        row("mean intensity (g/kWh)", lambda run: _fmt(run.carbon_metrics.mean_intensity_g_per_kwh, ".1f")),
        row("peak memory (MB)", lambda run: _reported(run.memory_metrics.peak_memory_mb, ".1f")),
        row("accuracy (%)", lambda run: _reported(run.training_metrics.final_accuracy, ".2f")),
        row("training time (s)", lambda run: _fmt(run.training_metrics.total_time_seconds, ".1f")),
        "",
        f"Peak memory: {MEMORY_METHODS.get(memory, memory)} (`{memory}`).",
        "",
    ]


def render_report(
    result: Comparison, baseline: RunSummary, optimized: RunSummary, figures: tuple[tuple[str, str, str], ...] = ()
) -> str:
    """The report as markdown; `figures` are (heading, PNG file beside the report, caption)."""
    lines = _runs_table(result, baseline, optimized) + savings_section(result) + sci_section(result.sci)
    lines += choice_section(result.optimized_choice)
    for heading, filename, caption in figures:
        lines += ["", f"## {heading}", "", f"![{heading}]({filename})", "", caption]
    if figures:
        data = ", ".join(f"`{path.name}`" for path in (TIMELINE_CSV, CUMULATIVE_CSV, EPOCHS_CSV))
        lines += ["", f"The charts' data sit beside this report ({data}); `dvc plots show` draws the same from them."]
    return "\n".join(lines) + "\n"


# The report's figures: (heading, PNG file beside the report, caption).
FIGURES = (
    (
        "When each run sat on the grid",
        TIMELINE_PNG.name,
        "The grid's carbon intensity over the scheduling horizon. Grey: where the start was allowed "
        "(submission to submission + max_wait); orange: the baseline's run, at submission; green: the window "
        "(or chunks) the scheduler planned for the optimized run.",
    ),
    (
        "Cumulative emissions",
        CUMULATIVE_PNG.name,
        "Grams of CO2 summed over the measurement intervals against run time; each curve ends at its run's "
        "total. The gap between the curves is the total reduction.",
    ),
    (
        "Loss and accuracy per epoch",
        EPOCHS_PNG.name,
        "Training loss (solid), test loss (dashed) and test accuracy.",
    ),
)


def write_plots(
    baseline: RunSummary, optimized: RunSummary, horizon: Horizon, decision: Decision
) -> tuple[tuple[str, str, str], ...]:
    """Write the plot data (for DVC) and the PNG charts (for the report); return the report's figures."""
    series, submitted = horizon.series, horizon.submitted
    summaries = {"baseline": baseline, "optimized": optimized}

    baseline_span, windows = run_span(baseline), window_spans(decision.chunks, decision.start, decision.expected_end)
    write_csv(
        TIMELINE_CSV, timeline_frame(series, submitted, {"baseline_run": [baseline_span], "optimized_window": windows})
    )
    epochs = epochs_frame({run: read_run_csv(run, "epochs.csv") for run in RUNS})
    write_csv(EPOCHS_CSV, epochs)
    curves = {run: cumulative_emissions(load_intervals(run)) for run in RUNS}
    write_csv(CUMULATIVE_CSV, cumulative_frame(curves))

    def intensity(run: str) -> str:
        mean = summaries[run].carbon_metrics.mean_intensity_g_per_kwh
        return "energy unknown" if mean is None else f"{mean:.0f} g/kWh"

    plan = "window" if len(windows) == 1 else f"{len(windows)} chunks"
    charts.draw_timeline(
        TIMELINE_PNG,
        series,
        (submitted, decision.latest_start),
        (
            f"baseline run: {_clock_time(baseline.scheduler_metrics.start)}, "
            f"{format_duration(baseline_span[1] - baseline_span[0])}, {intensity('baseline')}",
            baseline_span,
        ),
        (
            f"optimized {plan}: {_clock_time(decision.start)}, expected {decision.expected_mean_intensity:.0f} g/kWh",
            windows,
        ),
        f"Grid carbon intensity ({series.source}, {series.region}, {horizon.clock} clock) and when each run sat",
    )
    charts.draw_epochs(EPOCHS_PNG, epochs, RUNS)
    charts.draw_cumulative(
        CUMULATIVE_PNG,
        curves,
        {run: f"{run} (from {_clock_time(summaries[run].scheduler_metrics.start)}, {intensity(run)})" for run in RUNS},
    )
    return FIGURES
