"""What `carbon-pipe profile` prints: one flat JSON object (--json) or a short table, both from an EnergyProfile."""

from __future__ import annotations

from .result import EnergyProfile, describe


def flat_summary(profile: EnergyProfile, compared: str = "optimized") -> dict:
    """Each configuration's figures under its name, the compared one's ratio and verdict, and the burst table."""
    summary: dict = {}
    for config in profile.configurations:
        summary.update({
            f"{config.name}_j_per_sample": config.j_per_sample.value,
            f"{config.name}_j_per_sample_ci95": config.j_per_sample.bounds,
            f"{config.name}_s_per_sample": config.s_per_sample.value,
            f"{config.name}_s_per_sample_ci95": config.s_per_sample.bounds,
            f"{config.name}_precision": config.precision,
            f"{config.name}_steps_per_burst": config.steps_per_burst,
        })
    ratio = profile.configuration(compared)
    summary.update(
        ratio=ratio.ratio.value,
        ratio_ci95=ratio.ratio.bounds,
        verdict=ratio.verdict,
        verdict_text=describe(ratio.ratio),
        energy_method=profile.energy_method,
        interval_method=profile.interval_method,
        processes=profile.processes,
        rounds=profile.rounds,
        warmup_rounds=profile.warmup_rounds,
        stopping=profile.stopping.as_dict(),
        profiling_energy_kwh=profile.profiling_energy_kwh,
        profiling_seconds=profile.profiling_seconds,
        bursts=[burst.as_dict() for burst in profile.bursts],
    )
    return summary


def render_text(profile: EnergyProfile) -> str:
    stop = profile.stopping
    lines = [
        f"energy per training sample, paired: {profile.processes} fresh worker process(es) x {profile.rounds} rounds "
        f"of alternating bursts (ABBA order), {profile.warmup_rounds} warm-up round(s) each discarded",
        f"energy: {profile.energy_method}",
        f"{'configuration':<16}{'precision':<26}{'steps/burst':>12}  {'mJ/sample [95 %]':<28}{'ms/sample [95 %]':<24}",
    ]
    for config in profile.configurations:
        energy, time = (
            f"{1e3 * i.value:.4f} [{1e3 * i.low:.4f}, {1e3 * i.high:.4f}]"
            for i in (config.j_per_sample, config.s_per_sample)
        )
        lines.append(f"{config.name:<16}{config.precision:<26}{config.steps_per_burst:>12}  {energy:<28}{time}")
    for config in profile.configurations:
        if config.ratio is not None:
            lines.append(f"{config.name} / {profile.baseline}, energy per sample: {describe(config.ratio)}")
    lines += [
        f"interval: {profile.interval_method}",
        f"stopped: {stop.reason} after {profile.processes} of at most {stop.planned_processes} processes; "
        f"no difference counts as settled inside +-{100 * stop.settle_within:g} %",
        f"profiling spent {stop.spent_joules:.1f} J (worker start-up included) of a {stop.budget_joules:.1f} J budget; "
        f"its bursts {profile.profiling_energy_kwh * 3.6e6:.1f} J in {profile.profiling_seconds:.1f} s",
    ]
    return "\n".join(lines)
