"""The compare stage: before/after numbers, re-derived from the runs' own artifacts, and the savings split in two."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

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
from ..profiling.record import RunProfile
from ..scheduling.decision import Decision
from ..timeutil import format_duration, parse_instant
from . import charts
from .effects import effects
from .plot_data import cumulative_emissions, cumulative_frame, epochs_frame, run_span, timeline_frame, window_spans
from .runs import load_intervals, read_run_csv
from .sections import choice_section, savings_section, sci_section


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _difference(base: float | None, opt: float | None) -> float | None:
    """base - opt, or None when either was not measured or not reported (a command run's figures may be null)."""
    return None if base is None or opt is None else base - opt


def _reduction(base: float | None, opt: float | None, keys: tuple[str, str, str], method: str) -> dict:
    """Baseline, optimized and the reduction under `keys`, the reduction in % of the baseline, and how measured."""
    reduction = _difference(base, opt)
    percentage = None if reduction is None else _pct(reduction, base)
    return {keys[0]: base, keys[1]: opt, keys[2]: reduction, "reduction_percentage": percentage, "method": method}


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _clock_time(instant: str | float) -> str:
    moment = parse_instant(instant) if isinstance(instant, str) else instant
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%H:%M UTC")


def read_profile(optimized: dict) -> tuple[Optional[RunProfile], Optional[str]]:
    """The optimized run's profile, or why it has none (a torchrun job; a run driven by another script)."""
    section = optimized.get("profile") or {"skipped": "not profiled: the optimized run's summary has no profile"}
    if section.get("skipped"):
        return None, section["skipped"]
    return RunProfile.read(run_profile_file("optimized")), None


def noise_band(profile: Optional[RunProfile]) -> dict:
    """How far apart two runs of the same params and code may land, from the profile's spread between processes
    (`carbon-pipe diff` marks differences inside it as noise)."""
    return {
        "energy_noise_pct": profile.profile.run_to_run_band_pct("joules") if profile else None,
        "time_noise_pct": profile.profile.run_to_run_band_pct("seconds") if profile else None,
        "method": (
            "95 % band of the relative difference of two runs: Student's t x sqrt(2) x the baseline's coefficient of "
            "variation of energy (time) per sample between the profile's fresh processes"
        ),
    }


def compare(baseline: dict, optimized: dict, series: IntensitySeries) -> dict:
    base_iv, opt_iv = load_intervals("baseline"), load_intervals("optimized")
    comparable = bool(len(base_iv)) and bool(len(opt_iv))
    result: dict = {"comparable": comparable}
    if comparable:
        profile, not_profiled = read_profile(optimized)
        result.update(savings(optimized, base_iv, opt_iv, series, baseline["scheduler_metrics"]["start"]))
        result["decomposition"] = effects(
            base_iv, opt_iv, series, parse_instant(baseline["scheduler_metrics"]["start"]), profile, not_profiled
        )
        result["noise"] = noise_band(profile)
    else:
        reasons = [
            f"{name}: {summary['carbon_metrics'].get('energy_error') or 'no energy intervals'}"
            for name, summary, frame in (("baseline", baseline, base_iv), ("optimized", optimized, opt_iv))
            if not len(frame)
        ]
        result["not_comparable_reason"] = "energy unknown for " + "; ".join(reasons)
    result.update(side_by_side(baseline, optimized, series))
    result["sci"] = {"baseline": baseline.get("sci"), "optimized": optimized.get("sci")}
    result["optimized_choice"] = (optimized.get("profile") or {}).get("choice")
    return result


def savings(
    optimized: dict, base_iv: pd.DataFrame, opt_iv: pd.DataFrame, series: IntensitySeries, baseline_start: str
) -> dict:
    """The reduction in CO2 and energy, and the profiling energy against the baseline's."""
    base_kg, opt_kg = float(base_iv["emissions_kg"].sum()), float(opt_iv["emissions_kg"].sum())
    base_kwh, opt_kwh = float(base_iv["energy_kwh"].sum()), float(opt_iv["energy_kwh"].sum())
    profiling_kwh = float(opt_iv.loc[opt_iv["phase"] == PROFILE, "energy_kwh"].sum())
    return {
        "carbon_savings": {
            "baseline_emissions_kg": base_kg,
            "optimized_emissions_kg": opt_kg,
            "reduction_kg": base_kg - opt_kg,
            "reduction_percentage": _pct(base_kg - opt_kg, base_kg),
        },
        "energy": {
            **_reduction(
                base_kwh, opt_kwh, ("baseline_kwh", "optimized_kwh", "reduction_kwh"),
                optimized["carbon_metrics"]["energy_method"],
            ),
            "profiling_kwh": profiling_kwh,
            "profiling_percentage_of_baseline": _pct(profiling_kwh, base_kwh),
        },
    }


def side_by_side(baseline: dict, optimized: dict, series: IntensitySeries) -> dict:
    """Accuracy, peak memory and time of the two runs, and the labels every number carries."""
    base_acc, opt_acc = baseline["training_metrics"]["final_accuracy"], optimized["training_metrics"]["final_accuracy"]
    base_mem, opt_mem = baseline["memory_metrics"]["peak_memory_mb"], optimized["memory_metrics"]["peak_memory_mb"]
    base_t, opt_t = (
        baseline["training_metrics"]["total_time_seconds"],
        optimized["training_metrics"]["total_time_seconds"],
    )
    scheduled = optimized["scheduler_metrics"]
    return {
        "accuracy_impact": {
            "baseline_accuracy": base_acc, "optimized_accuracy": opt_acc,
            "difference_points": _difference(opt_acc, base_acc),
        },
        "memory_savings": _reduction(
            base_mem, opt_mem, ("baseline_peak_mb", "optimized_peak_mb", "reduction_mb"),
            optimized["memory_metrics"]["method"],
        ),
        "time": {
            "baseline_seconds": base_t,
            "optimized_seconds": opt_t,
            "difference_seconds": opt_t - base_t,
            "optimized_wait_seconds": scheduled["wait_seconds"],
            "optimized_paused_seconds": scheduled.get("paused_seconds", 0.0),
        },
        "labels": {
            "clock": scheduled["clock"],
            "simulated_clock": scheduled["simulated_clock"],
            "intensity_source": series.source,
            "intensity_source_failures": optimized["carbon_metrics"].get("intensity_source_failures", []),
            "energy_method": optimized["carbon_metrics"]["energy_method"],
            "baseline_precision": baseline["precision"],
            "optimized_precision": optimized["precision"],
        },
    }


def key_metrics(result: dict, baseline: dict, optimized: dict) -> dict:
    """The numbers `dvc metrics diff` and `dvc exp show` put in columns: flat, numeric, in readable units.

    Everything else (labels, methods, notes) stays in comparison.json and the runs' summaries.
    """
    runs = {"baseline": baseline, "optimized": optimized}

    def per_run(name: str, section: str, key: str, factor: float = 1.0) -> dict:
        return {
            f"{run}_{name}": _scaled((summary.get(section) or {}).get(key), factor) for run, summary in runs.items()
        }

    savings, split = result.get("carbon_savings", {}), result.get("decomposition", {})

    def with_interval(name: str, key: str, factor: float = 1000) -> dict:
        bounds = split.get(f"{key}_ci95") or (None, None)
        return {name: _scaled(split.get(key), factor), f"{name}_low": _scaled(bounds[0], factor),
                f"{name}_high": _scaled(bounds[1], factor)}

    return {
        **per_run("co2_g", "carbon_metrics", "total_emissions_kg", 1000),
        "co2_reduction_pct": savings.get("reduction_percentage"),
        **with_interval("schedule_effect_g", "schedule_effect_kg"),
        **with_interval("configuration_effect_g", "configuration_effect_kg"),
        **with_interval("configuration_ratio", "configuration_ratio", 1.0),
        "configuration_effect_naive_g": _scaled(split.get("configuration_effect_naive_kg"), 1000),
        "remainder_g": _scaled(split.get("remainder_kg"), 1000),
        "profiling_overhead_g": _scaled(split.get("profiling_overhead_kg"), 1000),
        "profiling_energy_pct_of_baseline": result.get("energy", {}).get("profiling_percentage_of_baseline"),
        "held_idle_g": _scaled(split.get("held_idle_kg"), 1000),
        **per_run("energy_wh", "carbon_metrics", "energy_consumed_kwh", 1000),
        "energy_reduction_pct": result.get("energy", {}).get("reduction_percentage"),
        **per_run("sci_g_per_run", "sci", "per_run_g"),
        **per_run("sci_g_per_1000_samples", "sci", "per_1000_samples_g"),
        **per_run("sci_embodied_g", "sci", "embodied_g"),
        **per_run("accuracy_pct", "training_metrics", "final_accuracy"),
        **per_run("peak_memory_mb", "memory_metrics", "peak_memory_mb"),
        "memory_reduction_pct": result["memory_savings"]["reduction_percentage"],
        **per_run("time_s", "training_metrics", "total_time_seconds"),
        "optimized_wait_h": result["time"]["optimized_wait_seconds"] / 3600,
        "energy_noise_pct": result.get("noise", {}).get("energy_noise_pct"),
        "time_noise_pct": result.get("noise", {}).get("time_noise_pct"),
    }


def _ran_in(summary: dict) -> str:
    chunks = summary["scheduler_metrics"].get("chunks")
    if not chunks:
        return "one go"
    return f"{len(chunks)} chunks, paused {format_duration(summary['scheduler_metrics']['paused_seconds'])} in all"


def _fmt(value, spec: str = ".4g") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def _milli(value) -> str:  # kg -> g, kWh -> Wh: fewer leading zeros
    return _fmt(_scaled(value, 1000))


def _reported(value, spec: str = ".4g") -> str:
    """A run's own figure: one a command run did not report is said to be so."""
    return "not reported" if value is None else f"{value:{spec}}"


def _runs_table(result: dict, baseline: dict, optimized: dict) -> list[str]:
    """The two runs side by side, and how each figure was obtained."""
    labels = result["labels"]

    def row(label: str, value) -> str:
        return f"| {label} | {value(baseline)} | {value(optimized)} |"

    return [
        "# carbon-pipe: baseline vs optimized",
        "",
        f"- Clock: **{labels['clock']}**"
        + (" (the wait was computed, not slept)" if labels["simulated_clock"] else ""),
        f"- Grid intensity source: **{labels['intensity_source']}**"
        + "".join(f" (after {f['source']} failed: {f['error']})" for f in labels["intensity_source_failures"]),
        f"- Energy measured by: {labels['energy_method']}",
        "- Emissions = sum over measurement intervals of energy x grid intensity at that interval's time "
        "(see `stages/train-*/energy_intervals.csv`).",
        "",
        "| | baseline | optimized |",
        "|---|---|---|",
        row("batch x accumulation", lambda run: "not reported" if run["batch_size"] is None else
            f"{run['batch_size']} x {_reported(run['gradient_accumulation_steps'], '')}"),
        f"| precision | {_reported(labels['baseline_precision'], '')} | "
        f"{_reported(labels['optimized_precision'], '')} |",
        row("start (pipeline clock)", lambda run: run["scheduler_metrics"]["start"]),
        row("ran in", _ran_in),
        row("CO2 (g)", lambda run: _milli(run["carbon_metrics"]["total_emissions_kg"])),
        row("energy (Wh)", lambda run: _milli(run["carbon_metrics"]["energy_consumed_kwh"])),
        row("mean intensity (g/kWh)", lambda run: _fmt(run["carbon_metrics"]["mean_intensity_g_per_kwh"], ".1f")),
        row("peak memory (MB)", lambda run: _reported(run["memory_metrics"]["peak_memory_mb"], ".1f")),
        row("accuracy (%)", lambda run: _reported(run["training_metrics"]["final_accuracy"], ".2f")),
        row("training time (s)", lambda run: _fmt(run["training_metrics"]["total_time_seconds"], ".1f")),
        "",
        f"Peak memory: {result['memory_savings']['method']}.",
        "",
    ]


def render_report(
    result: dict, baseline: dict, optimized: dict, figures: tuple[tuple[str, str, str], ...] = ()
) -> str:
    """The report as markdown; `figures` are (heading, PNG file beside the report, caption)."""
    lines = _runs_table(result, baseline, optimized) + savings_section(result) + sci_section(result["sci"])
    lines += choice_section(result["optimized_choice"])
    for heading, filename, caption in figures:
        lines += ["", f"## {heading}", "", f"![{heading}]({filename})", "", caption]
    if figures:
        data = ", ".join(f"`{path.name}`" for path in (TIMELINE_CSV, CUMULATIVE_CSV, EPOCHS_CSV))
        lines += ["", f"The charts' data sit beside this report ({data}); `dvc plots show` draws the same from them."]
    return "\n".join(lines) + "\n"


def write_plots(
    baseline: dict, optimized: dict, horizon: Horizon, decision: Decision
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
        mean = summaries[run]["carbon_metrics"]["mean_intensity_g_per_kwh"]
        return "energy unknown" if mean is None else f"{mean:.0f} g/kWh"

    plan = "window" if len(windows) == 1 else f"{len(windows)} chunks"
    charts.draw_timeline(
        TIMELINE_PNG,
        series,
        (submitted, decision.latest_start),
        (f"baseline run: {_clock_time(baseline['scheduler_metrics']['start'])}, "
         f"{format_duration(baseline_span[1] - baseline_span[0])}, {intensity('baseline')}", baseline_span),
        (f"optimized {plan}: {_clock_time(decision.start)}, expected {decision.expected_mean_intensity:.0f} g/kWh",
         windows),
        f"Grid carbon intensity ({series.source}, {series.region}, {horizon.clock} clock) and when each run sat",
    )
    charts.draw_epochs(EPOCHS_PNG, epochs, RUNS)
    charts.draw_cumulative(
        CUMULATIVE_PNG,
        curves,
        {
            run: f"{run} (from {_clock_time(summaries[run]['scheduler_metrics']['start'])}, {intensity(run)})"
            for run in RUNS
        },
    )
    return (
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
