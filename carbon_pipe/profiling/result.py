"""The profile's result: per-configuration energy and time per sample, each ratio to the baseline, and the bursts.

An EnergyProfile is re-derivable: `summarize` computes every number from the burst table alone, and a written
profile is rebuilt that way (profiling/record.py), so a JSON copy cannot hold figures its bursts do not support.
Callers write it (`as_dict`); nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from . import statistics

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % interval."""

    value: float
    low: float
    high: float

    @property
    def bounds(self) -> list[float | None]:
        """[low, high] for JSON, which holds no infinity: null where the interval is unbounded (a ratio whose
        baseline energy per sample was not clearly away from zero: the counter moved less than its noise)."""
        return [bound if np.isfinite(bound) else None for bound in (self.low, self.high)]

    def as_dict(self) -> dict:
        low, high = self.bounds
        return {"value": self.value, "low": low, "high": high}


@dataclass(frozen=True)
class Burst:
    """One burst: `steps` optimizer steps of one configuration, with the energy counter read before and after."""

    round: int  # measured rounds count from 0; warm-up rounds from -warmup_rounds to -1
    position: int  # place within its round (the order alternates between rounds)
    configuration: str
    steps: int
    samples: int
    seconds: float
    joules: float
    process: int = 0  # the fresh worker process that ran it, from 0

    @property
    def warmup(self) -> bool:
        return self.round < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "warmup": self.warmup}


@dataclass(frozen=True)
class ConfigurationEnergy:
    name: str
    precision: str
    steps_per_burst: int
    j_per_sample: Interval  # the mean over processes of each one's mean over its rounds of joules / samples
    s_per_sample: Interval
    ratio: Interval | None  # j_per_sample / the baseline's, paired by process (at the stop); None for the baseline
    verdict: str | None  # less, more, or no measurable difference (energy per sample vs the baseline)

    def as_dict(self) -> dict:
        intervals = {"j_per_sample": self.j_per_sample, "s_per_sample": self.s_per_sample, "ratio": self.ratio}
        return {**asdict(self), **{key: value and value.as_dict() for key, value in intervals.items()}}


@dataclass(frozen=True)
class Stopping:
    """Why the profile stopped, and what it was allowed: the planned processes (the looks its intervals are
    corrected for), the energy budget and what the whole profile spent (worker start-up included)."""

    planned_processes: int
    settle_within: float  # a fraction: no difference is settled when the interval lies inside 1 +- this
    reason: str  # settled, budget spent, or every planned process run
    budget_joules: float | None = None
    spent_joules: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EnergyProfile:
    baseline: str
    configurations: tuple[ConfigurationEnergy, ...]
    energy_method: str
    bursts: tuple[Burst, ...]
    stopping: Stopping
    interval_method: str = statistics.SEQUENTIAL_METHOD

    @property
    def processes(self) -> int:
        return len({burst.process for burst in self.bursts if not burst.warmup})

    @property
    def rounds(self) -> int:
        """Measured rounds in each process."""
        return len({burst.round for burst in self.bursts if not burst.warmup})

    @property
    def warmup_rounds(self) -> int:
        return len({burst.round for burst in self.bursts if burst.warmup})

    @property
    def profiling_energy_kwh(self) -> float:
        """Everything the profile spent on training, warm-up bursts included."""
        return sum(burst.joules for burst in self.bursts) / JOULES_PER_KWH

    @property
    def profiling_seconds(self) -> float:
        return sum(burst.seconds for burst in self.bursts)

    def configuration(self, name: str) -> ConfigurationEnergy:
        return next(config for config in self.configurations if config.name == name)

    def run_to_run_band_pct(self, per_sample: str) -> float | None:
        """The 95 % band, in %, of the difference between two whole runs of the baseline that nothing but the
        machine tells apart: t x sqrt(2) x the coefficient of variation of its joules (or seconds) per sample
        between fresh processes (a run is one process). None with fewer than two processes."""
        values = per_process(self.bursts, self.baseline, per_sample)
        if len(values) < 2:
            return None
        variation = values.std(ddof=1) / values.mean()
        return float(100 * statistics.t_quantile(0.5 + statistics.LEVEL / 2, len(values) - 1) * np.sqrt(2) * variation)

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "energy_method": self.energy_method,
            "interval_method": self.interval_method,
            "processes": self.processes,
            "rounds": self.rounds,
            "warmup_rounds": self.warmup_rounds,
            "stopping": self.stopping.as_dict(),
            "profiling_energy_kwh": self.profiling_energy_kwh,
            "profiling_seconds": self.profiling_seconds,
            "configurations": [config.as_dict() for config in self.configurations],
            "bursts": [burst.as_dict() for burst in self.bursts],
        }


def per_process(bursts: Sequence[Burst], name: str, per_sample: str) -> np.ndarray:
    """One configuration's joules or seconds per sample, averaged over each process's measured rounds, in process
    order: the process is the unit of variance (what it starts with moves a result more than anything inside it)."""
    by_process: dict[int, list[float]] = {}
    for burst in bursts:
        if burst.configuration == name and not burst.warmup:
            by_process.setdefault(burst.process, []).append(getattr(burst, per_sample) / burst.samples)
    return np.array([np.mean(by_process[process]) for process in sorted(by_process)])


def _interval(values: tuple) -> Interval:
    return Interval(*map(float, values))


def unbounded(value: float) -> Interval:
    """One process: no spread between processes to build an interval from."""
    return Interval(float(value), -np.inf, np.inf)


def look_intervals(bursts: Sequence[Burst], names: Sequence[str], planned: int) -> list[Interval]:
    """Each compared configuration's ratio to the baseline (names[0]) at this look: the repeated confidence interval
    at the nominal level of Pocock's boundary for the planned looks, which the stop rule and the verdict use."""
    energy = {name: per_process(bursts, name, "joules") for name in names}
    level = statistics.sequential_level(statistics.FIRST_LOOK, planned)
    if len(energy[names[0]]) < 2:
        return [unbounded(energy[name].mean() / energy[names[0]].mean()) for name in names[1:]]
    return [_interval(statistics.ratio_interval(energy[name], energy[names[0]], level)) for name in names[1:]]


def summarize(
    bursts: Sequence[Burst], baseline: str, precisions: dict[str, str], energy_method: str, stopping: Stopping
) -> EnergyProfile:
    """Every figure of the profile from its burst table; the warm-up bursts count only as energy spent. Each ratio's
    interval is the one where the profile stopped (statistics.interval_at_stop), its verdict the boundary crossing."""
    names = list(precisions)
    energy = {name: per_process(bursts, name, "joules") for name in names}
    enough = len(energy[baseline]) >= 2
    configurations = []
    for name in names:
        ratio = None
        if name != baseline:
            estimate = float(energy[name].mean() / energy[baseline].mean())
            ratio = (
                _interval(statistics.interval_at_stop(
                    energy[name], energy[baseline], statistics.FIRST_LOOK, stopping.planned_processes,
                    stopping.settle_within,
                )) if enough else unbounded(estimate)
            )
        seconds = per_process(bursts, name, "seconds")
        configurations.append(
            ConfigurationEnergy(
                name=name,
                precision=precisions[name],
                steps_per_burst=max(b.steps for b in bursts if b.configuration == name and not b.warmup),
                j_per_sample=_interval(statistics.mean_interval(energy[name])) if enough
                else unbounded(energy[name].mean()),
                s_per_sample=_interval(statistics.mean_interval(seconds)) if enough else unbounded(seconds.mean()),
                ratio=ratio,
                verdict=None if ratio is None else statistics.verdict(ratio.low, ratio.high),
            )
        )
    return EnergyProfile(baseline, tuple(configurations), energy_method, tuple(bursts), stopping)


def describe(ratio: Interval) -> str:
    """What a ratio's interval says, in words: "within -x % / +y %" when it holds 1 (no signed point effect), else
    less or more with the ratio and its interval. Unbounded: nothing is known."""
    verdict = statistics.verdict(ratio.low, ratio.high)
    if not (np.isfinite(ratio.low) and np.isfinite(ratio.high)):
        return f"{statistics.NO_DIFFERENCE}: unbounded interval (too few processes, or a counter that barely moved)"
    if verdict == statistics.NO_DIFFERENCE:
        low, high = statistics.within_pct(ratio.low, ratio.high)
        return f"{verdict}: within {low:+.1f} % / {high:+.1f} %"
    return f"{verdict}: ratio {ratio.value:.3f} [95 % interval {ratio.low:.3f}, {ratio.high:.3f}]"
