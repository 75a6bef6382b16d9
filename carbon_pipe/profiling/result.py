"""The profile's result: per-configuration energy and time per sample, each ratio to the baseline, and the bursts.

An EnergyProfile is re-derivable: `summarize` computes every number from the burst table alone, and
`EnergyProfile.from_dict` rebuilds a written profile that way, so a JSON copy cannot hold figures its bursts do not
support. Callers write it (`as_dict`); nothing here does I/O.
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

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

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

    @property
    def warmup(self) -> bool:
        return self.round < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "warmup": self.warmup}

    @classmethod
    def from_dict(cls, row: dict) -> Burst:
        return cls(**{key: value for key, value in row.items() if key != "warmup"})  # warmup follows from round


@dataclass(frozen=True)
class ConfigurationEnergy:
    name: str
    precision: str
    steps_per_burst: int
    j_per_sample: Interval  # the mean over measured rounds of each burst's joules / samples
    s_per_sample: Interval
    ratio: Interval | None  # j_per_sample / the baseline's, paired by round; None for the baseline
    verdict: str | None  # less, more, or no measurable difference (energy per sample vs the baseline)

    def as_dict(self) -> dict:
        intervals = {"j_per_sample": self.j_per_sample, "s_per_sample": self.s_per_sample, "ratio": self.ratio}
        return {**asdict(self), **{key: value and value.as_dict() for key, value in intervals.items()}}


@dataclass(frozen=True)
class EnergyProfile:
    baseline: str
    configurations: tuple[ConfigurationEnergy, ...]
    energy_method: str
    bursts: tuple[Burst, ...]
    interval_method: str = statistics.RATIO_METHOD

    @property
    def rounds(self) -> int:
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

    def as_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "energy_method": self.energy_method,
            "interval_method": self.interval_method,
            "rounds": self.rounds,
            "warmup_rounds": self.warmup_rounds,
            "profiling_energy_kwh": self.profiling_energy_kwh,
            "profiling_seconds": self.profiling_seconds,
            "configurations": [config.as_dict() for config in self.configurations],
            "bursts": [burst.as_dict() for burst in self.bursts],
        }

    @classmethod
    def from_dict(cls, data: dict) -> EnergyProfile:
        """Rebuild a written profile from its burst table (its other figures are recomputed, not trusted)."""
        configs = data["configurations"]
        return summarize(
            [Burst.from_dict(burst) for burst in data["bursts"]],
            baseline=data["baseline"],
            precisions={config["name"]: config["precision"] for config in configs},
            energy_method=data["energy_method"],
        )


def per_round(bursts: Sequence[Burst], name: str, rounds: list[int], per_sample: str) -> np.ndarray:
    """One configuration's joules or seconds per sample in each measured round, in round order."""
    by_round = {burst.round: burst for burst in bursts if burst.configuration == name}
    return np.array([getattr(by_round[r], per_sample) / by_round[r].samples for r in rounds])


def summarize(
    bursts: Sequence[Burst], baseline: str, precisions: dict[str, str], energy_method: str
) -> EnergyProfile:
    """Every figure of the profile from its burst table; the warm-up bursts count only as energy spent."""
    names = list(precisions)
    rounds = sorted({burst.round for burst in bursts if not burst.warmup})
    measured = [burst for burst in bursts if not burst.warmup]
    energy = {name: per_round(measured, name, rounds, "joules") for name in names}
    configurations = []
    for name in names:
        ratio = None
        if name != baseline:
            ratio = Interval(*map(float, statistics.ratio_interval(energy[name], energy[baseline])))
        configurations.append(
            ConfigurationEnergy(
                name=name,
                precision=precisions[name],
                steps_per_burst=max(burst.steps for burst in measured if burst.configuration == name),
                j_per_sample=Interval(*map(float, statistics.mean_interval(energy[name]))),
                s_per_sample=Interval(
                    *map(float, statistics.mean_interval(per_round(measured, name, rounds, "seconds")))
                ),
                ratio=ratio,
                verdict=None if ratio is None else statistics.verdict(ratio.low, ratio.high),
            )
        )
    return EnergyProfile(baseline, tuple(configurations), energy_method, tuple(bursts))
