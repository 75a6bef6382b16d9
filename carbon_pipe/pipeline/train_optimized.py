"""The train-optimized stage: the carbon-aware configuration, trained where and when wait-for-window decided.

A flexible plan on the simulated clock trains in one go at the scheduled start. An interruptible plan trains in
its chunks (training/segments.py): by shares of the optimizer steps on the simulated clock, by time budgets with
re-plans between chunks on the real clock (scheduling/replanning.py). On the real clock a flexible plan is followed
as one chunk: DVC trains the baseline between wait-for-window and this stage, so the planned window may have
passed; then the run re-plans and waits again, the meter running through the pause (the hardware is held). Before
training, the run profiles the energy per sample of its configuration against the baseline's, as its first measured
segment; a run in one flexible segment on the simulated clock spreads the profile's later processes between shares
of its steps (profiling/first_segment.py). The summary, with the chunks as they ran and the profile, is written once.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..config.params import Params
from ..errors import UsageError
from ..intensity.horizon import read_horizon
from ..layout import train_dir
from ..profiling.first_segment import (
    profile_first,
    profile_section,
    spreads_over,
    train_between_processes,
    write_record,
)
from ..scheduling.clock import Clock, RealClock
from ..scheduling.decision import Decision, read_decision
from ..scheduling.replanning import Replanner
from ..scheduling.wait_loop import ProgressLine, Sleeper, quiet
from ..training import distributed
from ..training.following import Work, follow_plan
from ..training.loop import total_steps, train
from ..training.placement import Placement, held_idle
from ..training.resume import resume_folder
from ..training.run_summary import RunSummary, write_run_summary
from ..training.segments import TRAIN_MAPPING, Replan, Segment

RUN = "optimized"  # the run wait-for-window schedules
NAME = f"train {RUN}"


def run_stage(
    params: Params, say: ProgressLine = quiet, clock: Optional[Clock] = None, pause: Optional[Sleeper] = None
) -> RunSummary | None:
    """The run's summary on rank 0 (None on the other ranks of a torchrun job). The energy profile comes first, as
    the run's first measured segment, its later processes spread over the training where the run trains in one go
    (profiling/first_segment.py); auto makes its choice there."""
    decision, horizon, clock = read_decision(), read_horizon(), clock or RealClock()
    placed = Placement.scheduled(decision, horizon)
    with distributed.running(params.train.device, train_dir(RUN), NAME) as job:  # one group: profile and chunks
        one_flexible_segment = decision.mode != "interruptible" and decision.clock == "simulated"
        spread = spreads_over(params, one_flexible_segment and not job.distributed)
        profiled = profile_first(params, placed, job, clock.now, spread)
        if profiled.record is not None and placed.follows_wall_clock:  # the run began with its profile
            placed = dataclasses.replace(placed, began=profiled.record.clock_start)
        if spread:
            summary, profiled = train_between_processes(profiled.params, placed, job, profiled, clock.now)
        else:
            summary = follow(profiled.params, decision, placed, job, clock, say, pause)
        if summary is not None:
            summary = summary.completed(profile=profile_section(profiled, summary.carbon_metrics.by_phase))
            write_record(profiled)
            write_run_summary(summary)
    return summary


def follow(
    params: Params,
    decision: Decision,
    placed: Placement,
    job: distributed.Job,
    clock: Clock,
    say: ProgressLine,
    pause: Optional[Sleeper],
) -> RunSummary | None:
    """Follow the plan (training/following.py); torchrun ranks train a flexible plan in one go, as they do not
    re-plan on their own."""

    def one_segment(segment: Segment) -> RunSummary | None:
        return train(params, RUN, segment, job, placed)

    if job.distributed and decision.mode != "interruptible":
        return one_segment(Segment())
    if job.distributed and decision.clock == "real":
        raise UsageError(
            "scheduler.mode: interruptible on the real clock runs as one process (torchrun ranks would each "
            "re-plan on their own); use one process or the simulated clock"
        )

    def work() -> Work:
        steps, resume = total_steps(params, RUN), resume_folder(params, RUN, placed, job.world_size)

        def replan() -> Replan:
            replanner = Replanner(params, decision, steps, clock, say, pause, NAME)
            return held_idle(replanner, params.energy, job, resume, clock.now)

        return Work(steps, resume.done, resume.folder, replan)

    return follow_plan(decision, one_segment, work, TRAIN_MAPPING, say if job.is_main else quiet, NAME, clock.now)
