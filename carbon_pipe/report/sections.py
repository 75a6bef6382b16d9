"""The report's sections on savings, SCI and auto's choice: markdown lines from comparison.json's figures."""

from __future__ import annotations

import math
from typing import Optional

from ..profiling.statistics import NO_DIFFERENCE
from ..training.run_summary import AutoChoice
from .effects import METHOD
from .summaries import Comparison, SciPair


def fmt(value, spec: str = ".4g") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def grams(value: Optional[float]) -> str:  # kg -> g
    return fmt(None if value is None else value * 1000)


def grams_interval(value: Optional[float], bounds: Optional[list[Optional[float]]]) -> str:
    """The value and its interval in g; a bound JSON holds as null is unbounded (-inf, +inf)."""
    if bounds is None:
        return grams(value)
    low = "-inf" if bounds[0] is None else grams(bounds[0])
    high = "+inf" if bounds[1] is None else grams(bounds[1])
    return f"{grams(value)} [{low}, {high}]"


def unknown_sign(bounds: Optional[list[Optional[float]]]) -> str:
    """An effect whose interval holds zero: only its interval, in g."""
    low = "-inf" if not bounds or bounds[0] is None else grams(bounds[0])
    high = "+inf" if not bounds or bounds[1] is None else grams(bounds[1])
    return f"no measurable difference: between {low} and {high}"


def savings_section(result: Comparison) -> list[str]:
    if not result.comparable:
        return ["## Savings", "", f"Not comparable: {result.not_comparable_reason}."]
    savings, split = result.carbon_savings, result.decomposition

    def row(label: str, part: str, sign: float = 1.0) -> str:
        value, bounds = getattr(split, f"{part}_kg"), getattr(split, f"{part}_kg_ci95", None)
        share = getattr(split, f"{part}_percentage")
        if part == "configuration_effect" and split.verdict == NO_DIFFERENCE:
            return f"| {label} | {unknown_sign(bounds)} | n/a |"  # no signed point effect where none is measurable
        shown = grams_interval(None if value is None else sign * value, bounds)
        return f"| {label} | {shown} | {fmt(None if share is None else sign * share, '.1f')} |"

    lines = [
        "## Savings, split by cause",
        "",
        f"Configuration verdict (paired profile, energy per training sample): {split.verdict_text}.",
        "",
        "| | g CO2 [95 % interval] | % of the baseline's |",
        "|---|---|---|",
        row("*when* it ran (schedule effect)", "schedule_effect"),
    ]
    if split.configuration_effect_kg is not None or split.profiling_overhead_kg:
        lines += [  # rows of the paired profile: a run that never profiled (a command run) has none of them
            row("*how* it trained (configuration effect, paired profile)", "configuration_effect"),
            row("remainder: run-to-run noise (naive two-run difference minus the paired estimate)", "remainder"),
            row("profiling overhead (charged to the optimized run)", "profiling_overhead", -1.0),
        ]
    if split.held_idle_kg:
        lines.append(row("hardware held idle through pauses (real clock)", "held_idle", -1.0))
    lines += [
        f"| **total measured reduction** | **{grams(savings.reduction_kg)}** "
        f"| **{fmt(savings.reduction_percentage, '.1f')}** |",
        "",
        f"Beside it, the naive two-run configuration effect: {grams(split.configuration_effect_naive_kg)} g "
        f"({fmt(split.configuration_effect_naive_percentage, '.1f')} %): {METHOD['configuration_effect_naive']}.",
        "",
        f"How the parts add up: {METHOD['adds_up']}. Schedule effect: {METHOD['schedule_effect']}. "
        f"Configuration effect: {METHOD['configuration_effect']}.",
    ]
    return lines


SCI_METHOD = (
    "SCI = (E x I + M) per R: E every measured interval of the run (training, its profile, hardware held idle), I the "
    "location-based grid intensity at each interval's time (no market-based instruments), M = energy.embodied_kg x "
    "the measured (held) time / energy.lifetime_years, each device reserved whole; R one training run, and 1,000 "
    "training samples"
)
HELD_IDLE = {
    "not-held": "simulated clock: the pauses are recorded, not slept, so no hardware is held and E has no held idle "
    "energy",
    "measured": "real clock: the meter runs through every pause, so the energy of the hardware held idle is measured "
    "in E",
}


def sci_section(sci: SciPair) -> list[str]:
    """SCI = (E x I + M) per R, both runs side by side."""
    runs = (sci.baseline, sci.optimized)

    def row(label: str, key: str, spec: str = ".4g", factor: float = 1.0) -> str:
        values = (getattr(run, key) for run in runs)
        return f"| {label} | " + " | ".join(fmt(None if v is None else v * factor, spec) for v in values) + " |"

    first = sci.baseline
    return [
        "",
        "## Software Carbon Intensity (ISO/IEC 21031:2024)",
        "",
        "| | baseline | optimized |",
        "|---|---|---|",
        row("SCI, g CO2e per training run", "per_run_g"),
        row("SCI, g CO2e per 1,000 training samples", "per_1000_samples_g"),
        row("E x I, operational (g)", "operational_g"),
        row("M, embodied share (g)", "embodied_g"),
        row("E, energy (Wh)", "energy_kwh", factor=1000),
        row("of which hardware held idle (Wh)", "held_idle_energy_kwh", factor=1000),
        row("time the hardware was held (s)", "held_seconds", ".1f"),
        "",
        f"{SCI_METHOD}. M assumes {fmt(first.embodied_kg_per_device, 'g')} kg per device over "
        f"{fmt(first.lifetime_years, 'g')} years (params `energy.embodied_kg`, `energy.lifetime_years`; the "
        f"defaults are estimates). Held idle: {HELD_IDLE[sci.optimized.held_idle]}.",
    ]


def choice_section(choice: Optional[AutoChoice]) -> list[str]:
    """auto's candidates, what each measured, and which it trained."""
    if not choice:
        return []
    budget = choice.memory_budget_mb
    lines = [
        "",
        "## optimized: auto, the candidates",
        "",
        f"Memory budget: {'none' if budget is None else f'{budget:g} MB'}. Chosen: **{choice.chosen}**, "
        f"{choice.why}. Peak memory: {choice.memory_method}.",
        "",
        "| candidate | precision | peak memory (MB) | within budget | mJ/sample [95 %] | ratio to baseline [95 %] |",
        "|---|---|---|---|---|---|",
    ]
    for row in choice.candidates:
        energy = "not profiled"
        if row.j_per_sample is not None:  # in mJ
            energy = _with_bounds(row.j_per_sample, row.j_per_sample_ci95, scale=1e3, places=4)
        ratio = "n/a" if row.ratio is None else _with_bounds(row.ratio, row.ratio_ci95, scale=1.0, places=3)
        name = f"**{row.name}**" if row.chosen else row.name
        lines.append(
            f"| {name} | {row.precision or 'n/a'} | {row.peak_memory_mb:.1f} | "
            f"{'yes' if row.within_budget else 'no'} | {energy} | {ratio} |"
        )
    return lines


def _with_bounds(value: float, bounds: Optional[list[Optional[float]]], scale: float, places: int) -> str:
    """`value` [low, high], scaled; an unbounded end is inf."""
    if not bounds:
        return f"{value * scale:.{places}f}"
    low, high = (-math.inf if bounds[0] is None else bounds[0]), (math.inf if bounds[1] is None else bounds[1])
    return f"{value * scale:.{places}f} [{low * scale:.{places}f}, {high * scale:.{places}f}]"
