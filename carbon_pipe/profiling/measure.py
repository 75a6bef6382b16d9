"""`carbon-pipe profile`: short bursts of each configuration, alternating, with the energy counter read in between.

All configurations train in one process on the same data, in rounds: each round runs one burst of every
configuration, and the order mirrors from one round to the next (AB BA AB BA ..., with three ABC CBA ...), so a
drift that is linear in time (the machine warming, a neighbour's load rising) adds as much to every configuration
over each two rounds. The warm-up rounds come first (first allocations, kernel choice, torch.compile): they time each
configuration's step, which sets its steps per burst, and are left out of every figure but the energy spent.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence, TypeVar

from ..layout import RUNS
from ..params import Params
from ..training.allocator import steady_allocator
from ..training.distributed import pick_device
from ..training.settings import ProfileParams, RunParams
from .counters import EnergyCounter, open_counter
from .result import Burst, EnergyProfile, summarize
from .steps import ConfigurationSteps, TrainSplit, configuration_steps

Result = TypeVar("Result")


def burst_order(names: Sequence[str], round_index: int) -> list[str]:
    """The configurations' order in a measured round: as given in even rounds, reversed in odd ones (ABBA)."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def run_profile(
    params: Params, runs: Mapping[str, RunParams] | None = None, counter: EnergyCounter | None = None,
    split: TrainSplit | None = None, profile: ProfileParams | None = None,
) -> EnergyProfile:
    """Energy and time per sample of each configuration (default: params' baseline and optimized), measured paired.

    The first configuration is the baseline, and every other one's ratio is to it. `profile` replaces the params'
    section (auto shares a round's time among its candidates).
    """
    runs = runs or {name: params.configuration(name) for name in RUNS}
    names, profile = list(runs), profile or params.profile
    steady_allocator(params.train.steady_allocator)  # as the train stages run
    split = split or TrainSplit.load(pick_device(params.train.device))
    device = split.data.labels.device
    configs = {name: configuration_steps(params, run, split) for name, run in runs.items()}
    counter = counter or open_counter(device.type, device.index or 0, params.energy.country_iso_code)
    try:
        bursts, steps = warm_up(configs, counter, profile)
        for round_index in range(profile.rounds):
            for position, name in enumerate(burst_order(names, round_index)):
                samples, seconds, joules = metered(counter, lambda: configs[name].take(steps[name]))
                bursts.append(Burst(round_index, position, name, steps[name], samples, seconds, joules))
    finally:
        counter.close()
    precisions = {name: config.precision for name, config in configs.items()}
    return summarize(bursts, names[0], precisions, counter.method)


def warm_up(
    configs: dict[str, ConfigurationSteps], counter: EnergyCounter, profile: ProfileParams
) -> tuple[list[Burst], dict[str, int]]:
    """Warm-up bursts of single steps for burst_seconds each; the last round's pace sets each one's steps per burst.

    The pace leaves out a burst's first step, which pays for allocations (and compiling) on the first round.
    """
    bursts, steps = [], {}
    for round_index in range(-profile.warmup_rounds, 0):
        for position, (name, config) in enumerate(configs.items()):
            ends, seconds, joules = metered(counter, lambda: single_steps(config, profile.burst_seconds))
            bursts.append(Burst(round_index, position, name, len(ends), sum(n for _, n in ends), seconds, joules))
            pace = (ends[-1][0] - ends[0][0]) / (len(ends) - 1)
            steps[name] = max(1, round(profile.burst_seconds / pace))
    return bursts, steps


def single_steps(config: ConfigurationSteps, seconds: float) -> list[tuple[float, int]]:
    """One step at a time, at least two, until `seconds` have passed: when each step ended, and its samples."""
    started, ends = time.perf_counter(), []
    while len(ends) < 2 or ends[-1][0] - started < seconds:
        samples = config.take(1)
        ends.append((time.perf_counter(), samples))
    return ends


def metered(counter: EnergyCounter, work: Callable[[], Result]) -> tuple[Result, float, float]:
    """`work` with the energy counter read just before and just after: (its result, seconds, joules)."""
    before = counter.joules()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    return result, seconds, counter.joules() - before
