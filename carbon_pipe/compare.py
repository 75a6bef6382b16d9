"""The compare stage: before/after numbers, re-derived from the runs' own artifacts, and the savings split in two."""

from __future__ import annotations

import pandas as pd

from .accounting import Decomposition, profile_emissions_kg
from .artifacts import read_json, write_json, write_text
from .errors import ArtifactError
from .timeutil import parse_instant
from .layout import COMPARISON_JSON, REPORT_MD, run_metrics, train_dir
from .schedule import load_horizon


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def load_intervals(run_name: str) -> pd.DataFrame:
    path = train_dir(run_name) / "energy_intervals.csv"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: run train --run {run_name} first") from None
    frame["start_s"] = [parse_instant(t) for t in frame["start"]]
    frame["end_s"] = [parse_instant(t) for t in frame["end"]]
    return frame


def compare(baseline: dict, optimized: dict) -> dict:
    _, series = load_horizon()
    base_iv, opt_iv = load_intervals("baseline"), load_intervals("optimized")
    comparable = bool(len(base_iv)) and bool(len(opt_iv))

    result: dict = {"comparable": comparable}
    if comparable:
        base_kg, opt_kg = float(base_iv["emissions_kg"].sum()), float(opt_iv["emissions_kg"].sum())
        shift = parse_instant(baseline["scheduler_metrics"]["start"]) - parse_instant(optimized["scheduler_metrics"]["start"])
        at_baseline_start = profile_emissions_kg(
            series, opt_iv["start_s"].to_numpy(), opt_iv["end_s"].to_numpy(), opt_iv["energy_kwh"].to_numpy(), shift
        )
        split = Decomposition(base_kg, opt_kg, at_baseline_start)
        base_kwh, opt_kwh = float(base_iv["energy_kwh"].sum()), float(opt_iv["energy_kwh"].sum())
        result["carbon_savings"] = {
            "baseline_emissions_kg": base_kg,
            "optimized_emissions_kg": opt_kg,
            "reduction_kg": split.reduction_kg,
            "reduction_percentage": _pct(split.reduction_kg, base_kg),
        }
        result["energy"] = {
            "baseline_kwh": base_kwh,
            "optimized_kwh": opt_kwh,
            "reduction_kwh": base_kwh - opt_kwh,
            "reduction_percentage": _pct(base_kwh - opt_kwh, base_kwh),
            "method": optimized["carbon_metrics"]["energy_method"],
        }
        result["decomposition"] = {
            "schedule_effect_kg": split.schedule_effect_kg,
            "configuration_effect_kg": split.configuration_effect_kg,
            "schedule_effect_percentage": _pct(split.schedule_effect_kg, base_kg),
            "configuration_effect_percentage": _pct(split.configuration_effect_kg, base_kg),
            "optimized_at_baseline_start_kg": split.optimized_at_baseline_start_kg,
            "method": (
                "schedule effect = the optimized run's own energy profile placed at the baseline's start minus "
                "the same profile where it ran; configuration effect = baseline minus that re-placed profile"
            ),
        }
    else:
        reasons = [
            f"{name}: {summary['carbon_metrics'].get('energy_error') or 'no energy intervals'}"
            for name, summary, frame in (("baseline", baseline, base_iv), ("optimized", optimized, opt_iv))
            if not len(frame)
        ]
        result["not_comparable_reason"] = "energy unknown for " + "; ".join(reasons)

    base_acc, opt_acc = baseline["training_metrics"]["final_accuracy"], optimized["training_metrics"]["final_accuracy"]
    result["accuracy_impact"] = {
        "baseline_accuracy": base_acc,
        "optimized_accuracy": opt_acc,
        "difference_points": opt_acc - base_acc,
    }
    base_mem, opt_mem = baseline["memory_metrics"], optimized["memory_metrics"]
    result["memory_savings"] = {
        "baseline_peak_mb": base_mem["peak_memory_mb"],
        "optimized_peak_mb": opt_mem["peak_memory_mb"],
        "reduction_mb": base_mem["peak_memory_mb"] - opt_mem["peak_memory_mb"],
        "reduction_percentage": _pct(base_mem["peak_memory_mb"] - opt_mem["peak_memory_mb"], base_mem["peak_memory_mb"]),
        "method": opt_mem["method"],
    }
    base_t, opt_t = baseline["training_metrics"]["total_time_seconds"], optimized["training_metrics"]["total_time_seconds"]
    result["time"] = {
        "baseline_seconds": base_t,
        "optimized_seconds": opt_t,
        "difference_seconds": opt_t - base_t,
        "optimized_wait_seconds": optimized["scheduler_metrics"]["wait_seconds"],
    }
    result["labels"] = {
        "clock": optimized["scheduler_metrics"]["clock"],
        "simulated_clock": optimized["scheduler_metrics"]["simulated_clock"],
        "intensity_source": series.source,
        "intensity_source_failures": optimized["carbon_metrics"].get("intensity_source_failures", []),
        "energy_method": optimized["carbon_metrics"]["energy_method"],
        "baseline_precision": baseline["precision"],
        "optimized_precision": optimized["precision"],
    }
    return result


def render_report(result: dict, baseline: dict, optimized: dict) -> str:
    def fmt(value, spec=".4g", unit=""):
        return "n/a" if value is None else f"{value:{spec}}{unit}"

    labels = result["labels"]
    lines = [
        "# carbon-pipe: baseline vs optimized",
        "",
        f"- Clock: **{labels['clock']}**" + (" (the wait was computed, not slept)" if labels["simulated_clock"] else ""),
        f"- Grid intensity source: **{labels['intensity_source']}**"
        + "".join(f" (after {f['source']} failed: {f['error']})" for f in labels["intensity_source_failures"]),
        f"- Energy measured by: {labels['energy_method']}",
        f"- Emissions = sum over measurement intervals of energy x grid intensity at that interval's time "
        "(see `stages/train-*/energy_intervals.csv`).",
        "",
        "| | baseline | optimized |",
        "|---|---|---|",
        f"| batch x accumulation | {baseline['batch_size']} x {baseline['gradient_accumulation_steps']} "
        f"| {optimized['batch_size']} x {optimized['gradient_accumulation_steps']} |",
        f"| precision | {labels['baseline_precision']} | {labels['optimized_precision']} |",
        f"| start (pipeline clock) | {baseline['scheduler_metrics']['start']} | {optimized['scheduler_metrics']['start']} |",
        f"| CO2 (kg) | {fmt(baseline['carbon_metrics']['total_emissions_kg'])} | {fmt(optimized['carbon_metrics']['total_emissions_kg'])} |",
        f"| energy (kWh) | {fmt(baseline['carbon_metrics']['energy_consumed_kwh'])} | {fmt(optimized['carbon_metrics']['energy_consumed_kwh'])} |",
        f"| mean intensity (g/kWh) | {fmt(baseline['carbon_metrics']['mean_intensity_g_per_kwh'], '.1f')} "
        f"| {fmt(optimized['carbon_metrics']['mean_intensity_g_per_kwh'], '.1f')} |",
        f"| peak memory (MB) | {fmt(baseline['memory_metrics']['peak_memory_mb'], '.1f')} | {fmt(optimized['memory_metrics']['peak_memory_mb'], '.1f')} |",
        f"| accuracy (%) | {fmt(baseline['training_metrics']['final_accuracy'], '.2f')} | {fmt(optimized['training_metrics']['final_accuracy'], '.2f')} |",
        f"| training time (s) | {fmt(baseline['training_metrics']['total_time_seconds'], '.1f')} "
        f"| {fmt(optimized['training_metrics']['total_time_seconds'], '.1f')} |",
        "",
        f"Peak memory: {result['memory_savings']['method']}.",
        "",
    ]
    if result["comparable"]:
        savings, split = result["carbon_savings"], result["decomposition"]
        lines += [
            "## Savings, split by cause",
            "",
            f"- Total reduction: **{fmt(savings['reduction_kg'])} kg** ({fmt(savings['reduction_percentage'], '.1f', ' %')})",
            f"- Due to *when* it ran (schedule effect): {fmt(split['schedule_effect_kg'])} kg "
            f"({fmt(split['schedule_effect_percentage'], '.1f', ' %')})",
            f"- Due to *how* it trained (configuration effect): {fmt(split['configuration_effect_kg'])} kg "
            f"({fmt(split['configuration_effect_percentage'], '.1f', ' %')})",
            "",
            f"{split['method']}.",
        ]
    else:
        lines += ["## Savings", "", f"Not comparable: {result['not_comparable_reason']}."]
    return "\n".join(lines) + "\n"


def run_stage() -> dict:
    baseline, optimized = read_json(run_metrics("baseline")), read_json(run_metrics("optimized"))
    result = compare(baseline, optimized)
    write_json(COMPARISON_JSON, result)
    write_text(REPORT_MD, render_report(result, baseline, optimized))
    return result
