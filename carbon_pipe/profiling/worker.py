"""The profile's fresh worker processes: each a new interpreter that runs one worker and exits.

`python -m carbon_pipe.profiling.worker FD` is one worker; measure.py starts it and talks to it over FD.

Each worker is spawned (a fresh exec), never forked from a process that imported torch once: the address layout the
kernel randomises at exec (where torch's libraries, their code and data, land) is inherited by forked workers, and
it moved the default pair's ratio from one forked family to the next 2.7 times as much as the family's own workers
varied (docs/measurement.md, "Spawned, not forked"). Workers sharing one layout are one sample of it; an interval
built across workers holds the layout's share of the variance only when each has its own. The price is torch's
import in every worker (about 3 s of CPU here), counted in the profile's spend like the rest.
"""

from __future__ import annotations

import mmap
import secrets
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Callable, Optional, TypeVar

from ..config.params import Params
from ..config.training import ProfileParams, RunParams
from ..emissions.attribution import Coefficients
from ..training.allocator import steady_allocator
from ..training.distributed import pick_device
from .counters import EnergyCounter, open_counter
from .result import Burst
from .steps import ConfigurationSteps, TrainSplit, configuration_steps

Result = TypeVar("Result")


@dataclass(frozen=True)
class Twin:
    """The sensitivity twin: the configuration `of`, doing `extra` more optimizer steps per burst than it counts
    samples for (a known extra amount of work per sample, e.g. 0.25: one more step for every four)."""

    name: str
    of: str
    extra: float

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.extra).limit_denominator(20)

    def counted_steps(self, steps: int) -> int:
        """At least `steps`, a multiple of the fraction's denominator, so the extra steps are exactly `fraction`."""
        return -(-steps // self.fraction.denominator) * self.fraction.denominator

    def extra_steps(self, steps: int) -> int:
        return int(steps * self.fraction)

    @property
    def work_ratio(self) -> float:
        return float(1 + self.fraction)


@dataclass(frozen=True)
class Request:
    process: int
    params: Params
    runs: dict[str, RunParams]
    profile: ProfileParams
    coefficients: Coefficients
    twin: Optional[Twin] = None


@dataclass(frozen=True)
class Finished:
    """A worker's last message: its counter, what really ran, and the training split's size."""

    energy_method: str
    precisions: dict[str, str]
    train_samples: int


def burst_order(names: list[str], round_index: int) -> list[str]:
    """The configurations' order in a measured round: as given in even rounds, reversed in odd ones (ABBA), so a
    drift linear in time adds as much to every configuration over each two rounds."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def serve(connection: Connection) -> int:
    """Run the one request the connection brings, send what it measures, and return the exit code."""
    try:
        work(connection.recv(), connection.send)
    except BaseException as exc:  # every failure goes to the parent, as it is
        try:
            connection.send(("error", exc))
        except OSError:  # the parent is gone: nobody to tell
            pass
        return 1
    return 0


def work(request: Request, send: Callable[[tuple], None]) -> None:
    """One worker process: every configuration built afresh, warm-up rounds, then the measured rounds of bursts.

    Every other worker builds and runs the configurations in reverse order, and each builds them on physical pages
    its predecessor did not use (fresh_pages), so what a placement favours varies from process to process and the
    interval, built across processes, takes it in.
    """
    held = fresh_pages()  # released before the measured rounds
    params, profile = request.params, request.profile
    steady_allocator(params.train.steady_allocator)  # as the train stages run
    device = pick_device(params.train.device)
    split = TrainSplit.load(device)
    names = list(request.runs) if request.process % 2 == 0 else list(reversed(request.runs))
    configs = {name: configuration_steps(params, request.runs[name], split) for name in names}
    if request.twin is not None:
        configs[request.twin.name] = with_extra_work(configs[request.twin.name], request.twin)
    counter = open_counter(device.type, device.index or 0, request.coefficients)
    try:
        steps = warm_up(request.process, configs, counter, profile, send)
        if request.twin is not None:  # both bursts as long (a burst's fixed costs alike), the twin's extra on top
            steps[request.twin.of] = steps[request.twin.name] = request.twin.counted_steps(steps[request.twin.of])
        held.close()
        for round_index in range(profile.rounds):
            for position, name in enumerate(burst_order(names, round_index)):
                samples, seconds, joules = metered(counter, lambda: configs[name].take(steps[name]))
                send(("burst", Burst(round_index, position, name, steps[name], samples, seconds, joules,
                                     request.process)))
    finally:
        counter.close()
        held.close()
    precisions = {name: configs[name].precision for name in request.runs}
    send(("done", Finished(counter.method, precisions, len(split.data))))


def fresh_pages() -> mmap.mmap:
    """A random number of pages, up to 256 MB, taken and touched before anything is built.

    A worker that starts as the last one exits gets the physical pages it freed, largely in the same order, so the
    data and the models' tensors would land on the same physical memory (the same cache sets) in every worker of a
    profile: its workers agreed with each other more than with the next profile's. Taken first, these pages move
    everything built after them onto other ones. Held through the warm-up only, so the resident memory the bursts
    are charged for (the RAM model's) is the configurations' own."""
    pages = mmap.mmap(-1, (1 + secrets.randbelow(1 << 16)) * mmap.PAGESIZE)
    for offset in range(0, len(pages), mmap.PAGESIZE):  # a byte per page: no 256 MB buffer to write them from
        pages[offset] = 1
    return pages


def with_extra_work(config: ConfigurationSteps, twin: Twin) -> ConfigurationSteps:
    """The twin: each burst of n steps also makes twin.extra_steps(n) more, whose samples are not counted."""

    def take(steps: int) -> int:
        samples = config.take(steps)
        config.take(twin.extra_steps(steps))
        return samples

    return ConfigurationSteps(take, config.precision)


def warm_up(
    process: int, configs: dict[str, ConfigurationSteps], counter: EnergyCounter, profile: ProfileParams,
    send: Callable[[tuple], None],
) -> dict[str, int]:
    """Warm-up bursts of single steps for burst_seconds each; the last round's pace sets each one's steps per burst.

    The pace leaves out a burst's first step, which pays for allocations (and compiling) on the first round.
    """
    steps = {}
    for round_index in range(-profile.warmup_rounds, 0):
        for position, (name, config) in enumerate(configs.items()):
            ends, seconds, joules = metered(counter, lambda: single_steps(config, profile.burst_seconds))
            samples = sum(n for _, n in ends)
            send(("burst", Burst(round_index, position, name, len(ends), samples, seconds, joules, process)))
            pace = (ends[-1][0] - ends[0][0]) / (len(ends) - 1)
            steps[name] = max(1, round(profile.burst_seconds / pace))
    return steps


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


if __name__ == "__main__":  # started by measure.start_worker, with its end of the connection's file descriptor
    from carbon_pipe.profiling import worker  # this module by its name, so what it sends unpickles as the parent's

    sys.exit(worker.serve(Connection(int(sys.argv[1]))))
