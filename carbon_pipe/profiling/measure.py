"""`carbon-pipe profile`: paired bursts of each configuration in several fresh worker processes, stopped sequentially.

Each worker process (worker.py) runs warm-up rounds, then `profile.rounds` rounds of one burst of every
configuration, the order mirrored from round to round (ABBA), with the energy counter read in between. The process
is the unit of variance: each one's mean energy per sample is one pair, and the ratio's interval is built across
processes. The first process's cost sets how many the budget (budget_pct of the baseline's expected training
energy) pays for, at most `profile.processes`: those are the planned ones. After each process, from the third on,
the profile looks: it stops when the verdict is settled (the interval clear of 1, or inside 1 +- settle_within_pct),
when the next process (priced at the costliest so far) would overrun the budget after all, or after the planned
processes. The first three always run (with fewer there is no interval): on a job too small for them the profile
says it spent more than its budget.
Each look's interval is corrected for all the planned looks (statistics.sequential_level), so a verdict at any look
is one at 5 %; where it stopped, the interval reported is the stage-wise one (statistics.interval_at_stop).
`Sequential` is the profile under way, one process at a time: train-optimized trains between its processes
(first_segment.py), `run_profile` runs them back to back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Callable, Mapping, Optional

from ..config.params import Params
from ..config.training import ProfileParams, RunParams
from ..emissions.attribution import codecarbon_coefficients
from ..errors import CarbonPipeError, MeasurementError
from ..layout import RUNS
from ..training.distributed import pick_device
from . import statistics
from .counters import open_counter
from .result import Burst, EnergyProfile, Stopping, look_intervals, per_process, summarize
from .worker import Finished, Request, Twin


def say(line: str) -> None:
    """Progress on stderr: a terminal and a stage's log both see it."""
    print(f"profile: {line}", file=sys.stderr, flush=True)


def run_profile(
    params: Params, runs: Mapping[str, RunParams] | None = None, profile: ProfileParams | None = None,
    twin: Twin | None = None, progress: Callable[[str], None] = say,
) -> EnergyProfile:
    """Energy and time per sample of each configuration (default: params' baseline and optimized), measured paired.

    The first configuration is the baseline, and every other one's ratio is to it. `profile` replaces the params'
    section (auto shares a round's time among its candidates); `twin` adds a costlier copy of one configuration.
    """
    profiling = Sequential.start(params, runs, profile, twin)
    while profiling.reason is None:
        profiling.next_process(progress)
    return profiling.profile()


@dataclass
class Sequential:
    """A sequential profile under way: worker after worker until the verdict is settled, the budget would be
    overrun, or every planned one ran. Between two processes its caller may do other work (train-optimized trains
    a share of its steps there, so the processes sample the run's minutes, not only its first): each process is
    metered on its own counter, opened as the worker starts and read once it is reaped."""

    request: Request
    bursts: list[Burst]
    planned: int  # the processes the looks are corrected for: profile.processes until the first one's cost is known
    spent: float = 0.0  # joules, every process's counter, worker start-up included
    costliest: float = 0.0  # joules, the costliest process this profile ran (not kept across a stop: then the mean)
    budget: float = 0.0
    reason: Optional[str] = None  # why it stopped; None: under way
    precisions: dict[str, str] = field(default_factory=dict)
    energy_method: str = ""

    @classmethod
    def start(
        cls, params: Params, runs: Mapping[str, RunParams] | None = None, profile: ProfileParams | None = None,
        twin: Twin | None = None,
    ) -> Sequential:
        runs = dict(runs or {name: params.configuration(name) for name in RUNS})
        profile = profile or params.profile
        request = Request(0, params, runs, profile, codecarbon_coefficients(), twin)
        return cls(request, [], profile.processes)

    @classmethod
    def resumed(cls, params: Params, profile: EnergyProfile) -> Sequential:
        """The profile a stopped run left under way, to go on with its next process."""
        stopping = profile.stopping
        request = Request(profile.processes, params, {name: params.configuration(name) for name in RUNS},
                          params.profile, codecarbon_coefficients())
        precisions = {config.name: config.precision for config in profile.configurations}
        return cls(request, list(profile.bursts), stopping.planned_processes, stopping.spent_joules or 0.0, 0.0,
                   stopping.budget_joules or 0.0, None, precisions, profile.energy_method)

    @property
    def processes(self) -> int:
        return self.request.process

    def next_process(self, progress: Callable[[str], None] = say) -> None:
        """Run the next worker process, then look: sets `reason` where the profile stops."""
        request, profile = self.request, self.request.profile
        device = pick_device(request.params.train.device)
        counter = open_counter(device.type, device.index or 0, request.coefficients)  # the worker's tree included
        try:
            finished = one_process(request, self.bursts, self.planned, progress)
            cost = counter.joules()
            self.spent += cost
            self.costliest = max(self.costliest, cost)
        finally:
            counter.close()
        self.precisions, self.energy_method = finished.precisions, finished.energy_method
        names = list(request.runs)
        baseline = per_process(self.bursts, names[0], "joules").mean()
        self.budget = profile.budget_pct / 100 * baseline * finished.train_samples * request.params.train.epochs
        if request.process == 0:  # before any look: the looks the intervals are corrected for are those it pays for
            self.planned = statistics.affordable_processes(profile.processes, self.spent, self.budget)
        self.request = replace(request, process=request.process + 1)
        ratios = look_intervals(self.bursts, names, self.planned)
        progress(look_line(self.processes, self.planned, ratios, self.spent, self.budget))
        self.reason = statistics.stop_reason(
            self.processes, self.planned, [(r.low, r.high) for r in ratios], profile.settle_within_pct / 100,
            self.spent, max(self.costliest, self.spent / self.processes), self.budget,
        )

    def profile(self) -> EnergyProfile:
        """Every figure from the bursts so far; a profile under way says so in its stopping reason."""
        stopping = Stopping(
            self.planned, self.request.profile.settle_within_pct / 100, self.reason or statistics.UNDER_WAY,
            self.budget, self.spent,
        )
        return summarize(self.bursts, next(iter(self.precisions)), self.precisions, self.energy_method, stopping)


def start_worker() -> tuple[Connection, subprocess.Popen]:
    """A worker (worker.py), a fresh interpreter started as `python -m`, with this process's sys.path and working
    folder (never re-running the caller's own script, as multiprocessing's spawn would), and a connection to it.
    Only the worker holds the other end, so its exit is an end of file here, never a wait for ever. The worker has a
    session of its own: this process decides what a signal stops (one_process ends the worker on Ctrl-C; a stage's
    SIGTERM waits until the profile is recorded)."""
    ours, theirs = socket.socketpair()
    path = os.pathsep.join(entry for entry in sys.path if entry)
    with theirs:
        worker = subprocess.Popen(
            [sys.executable, "-m", "carbon_pipe.profiling.worker", str(theirs.fileno())], pass_fds=[theirs.fileno()],
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,  # a terminal's Ctrl-C or a signal to the stage's group reaches this process only
        )
    return Connection(ours.detach()), worker


def one_process(request: Request, bursts: list[Burst], planned: int, progress) -> Finished:
    """Run one fresh worker; its bursts join `bursts`. A worker's error is raised here, as it was raised there."""
    connection, worker = start_worker()
    finished: Optional[Finished] = None
    error: Optional[BaseException] = None
    measured = 0
    try:
        connection.send(request)
        while True:
            try:
                kind, payload = connection.recv()
            except (EOFError, OSError):  # it exited
                break
            if kind == "burst":
                bursts.append(payload)
                measured += not payload.warmup
            elif kind == "done":
                finished = payload
            elif kind == "error":
                error = payload
    except BaseException:  # Ctrl-C here: the worker, in a session of its own, would go on with its bursts unread
        worker.kill()
        raise
    finally:
        connection.close()
        code = worker.wait()  # its CPU time joins the process tree's, where the counter reads it
    if isinstance(error, CarbonPipeError):
        raise error
    if error is not None or finished is None:
        cause = f"{error.__class__.__name__}: {error}" if error is not None else f"exit code {code}"
        raise MeasurementError(f"profile worker process {request.process + 1} failed ({cause})")
    progress(f"process {request.process + 1} of at most {planned}: {measured} bursts, {request.profile.rounds} rounds")
    return finished


def look_line(processes: int, planned: int, ratios: list, spent: float, budget: float) -> str:
    shown = ", ".join(
        f"ratio {r.value:.3f} [{r.low:.3f}, {r.high:.3f}]" if processes >= 2 else f"ratio {r.value:.3f}" for r in ratios
    )
    return f"after {processes} of at most {planned} processes: {shown}; spent {spent:.1f} J of a {budget:.1f} J budget"
