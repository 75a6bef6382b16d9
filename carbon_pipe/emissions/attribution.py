"""Energy charged to the job from its own process tree, where no hardware counter is readable.

A model estimate, like CodeCarbon's, but of what the job uses rather than what the machine has: its CPU time from
the kernel (user + system, every thread, live and exited children) x watts per busy logical CPU, plus its resident
memory x watts per GB, integrated over time. A neighbour's load stretches the job's wall time but hardly its CPU
time, so the energy charged no longer follows wall time one to one (CodeCarbon 3 charges RAM at no less than two
DIMMs, about 10 W, for any process: most of a small job's energy, all of it paid per second of wall time).

The coefficients: CPU, CodeCarbon's own TDP for the detected CPU (its table, else its 4 W per thread) over the
logical CPUs, the same watts per busy CPU as its process-mode CPU model; RAM, 3 W per 8 GB in use, CodeCarbon's own
figure before 3.0 (from memory makers' DDR3/DDR4 power). Both are recorded with every run.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import asdict, dataclass
from functools import lru_cache

import psutil

RAM_WATTS_PER_GB = 3 / 8
BYTES_PER_GB = 1024**3
METHOD = "process-tree model estimate"


@dataclass(frozen=True)
class Coefficients:
    cpu_watts: float  # per busy logical CPU: joules per CPU-second
    ram_watts_per_gb: float
    source: str

    def describe(self) -> str:
        return (
            f"CPU: process-tree CPU time x {self.cpu_watts:.3g} W per busy logical CPU; RAM: process-tree resident "
            f"memory x {self.ram_watts_per_gb:.3g} W/GB (model estimate, no RAPL; {self.source})"
        )

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def codecarbon_coefficients() -> Coefficients:
    """The coefficients on this machine: CodeCarbon's TDP for its CPU over the logical CPUs (about a second: its
    table is read once per process)."""
    from codecarbon.core.cpu import TDP

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its notes on an unknown CPU: the source says it
    tdp, cpus = TDP(), psutil.cpu_count() or 1
    watts = tdp.tdp if tdp.tdp else 4 * cpus  # CodeCarbon's default per thread when it knows no TDP
    source = f"CodeCarbon's TDP for {tdp.model or 'an unknown CPU'}: {watts:g} W over {cpus} logical CPUs; RAM 3 W/8 GB"
    return Coefficients(watts / cpus, RAM_WATTS_PER_GB, source)


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float  # user + system since each process started, the tree's total
    rss_bytes: int


def tree_usage() -> Usage:
    """This process and its descendants: CPU time from the kernel (this process's own to the nanosecond, through
    CLOCK_PROCESS_CPUTIME_ID; exited children through their parents' rusage) and resident memory."""
    own = time.process_time()
    exited = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own + exited.ru_utime + exited.ru_stime
    rss = psutil.Process().memory_info().rss
    for child in psutil.Process().children(recursive=True):
        try:
            with child.oneshot():
                times = child.cpu_times()  # children_*: its own exited children, not the live ones listed here
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += child.memory_info().rss
        except psutil.Error:  # it exited meanwhile: its time is in its parent's rusage from now on
            continue
    return Usage(cpu, rss)


class TreeEnergy:
    """Joules charged to the process tree since it was opened, by the coefficients: CPU time's difference, and
    resident memory integrated by the trapezoid rule between readings."""

    def __init__(self, coefficients: Coefficients, read=tree_usage, clock=time.perf_counter) -> None:
        self.coefficients = coefficients
        self.read, self.clock = read, clock
        self.first = self.last = read()
        self.last_time = clock()
        self.ram_gb_seconds = 0.0

    def joules(self) -> tuple[float, float]:
        """(CPU joules, RAM joules) since opened."""
        usage, now = self.read(), self.clock()
        self.ram_gb_seconds += (usage.rss_bytes + self.last.rss_bytes) / 2 / BYTES_PER_GB * (now - self.last_time)
        self.last, self.last_time = usage, now
        cpu_seconds = max(0.0, usage.cpu_seconds - self.first.cpu_seconds)
        return cpu_seconds * self.coefficients.cpu_watts, self.ram_gb_seconds * self.coefficients.ram_watts_per_gb

