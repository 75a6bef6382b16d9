"""The train-optimized stage: the carbon-aware configuration, trained where and when wait-for-window decided.

A flexible plan on the simulated clock trains in one go at the scheduled start. An interruptible plan trains in
its chunks (training/segments.py): by shares of the optimizer steps on the simulated clock, by time budgets with
re-plans between chunks on the real clock (scheduling/replanning.py). On the real clock a flexible plan is followed
as one chunk: DVC trains the baseline between wait-for-window and this stage, so the planned window may have
passed; then the run re-plans and waits again, the meter running through the pause (the hardware is held). Before
training, the run profiles the energy per sample of its configuration against the baseline's, as its first measured
segment (profiling/first_segment.py). The summary, with the chunks as they ran and the profile, is written once.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from ..config.params import Params
from ..errors import UsageError
from ..intensity.horizon import read_horizon
from ..layout import train_dir
from ..profiling.first_segment import attach_profile, profile_first, write_record
from ..scheduling.clock import Clock, RealClock
from ..scheduling.decision import Decision, read_decision
from ..scheduling.replanning import Replanner
from ..scheduling.waiting import Pause, Say, quiet
from ..training import distributed
from ..training.loop import run_training, total_steps, train
from ..training.placement import Placement, held_idle
from ..training.resume import resume_folder
from ..training.segments import Segment, chunk_metrics, follow_live_plan, follow_recorded_plan
from ..training.summary import write_summary

RUN = "optimized"  # the run wait-for-window schedules
NAME = f"train {RUN}"


def run_segment(params: Params, segment: Segment = Segment()) -> dict | None:
    """The optimized configuration in one go (or the one segment given) where the decision put it, whatever its
    chunks: what an interruptible run must match byte for byte."""
    return run_training(params, RUN, Placement.scheduled(read_decision(), read_horizon()), segment)


def run_stage(
    params: Params, say: Say = quiet, clock: Optional[Clock] = None, pause: Optional[Pause] = None
) -> dict | None:
    """The run's summary on rank 0 (None on the other ranks of a torchrun job). The energy profile comes first, as
    the run's first measured segment (profiling/first_segment.py); auto makes its choice there."""
    decision, horizon, clock = read_decision(), read_horizon(), clock or RealClock()
    placed = Placement.scheduled(decision, horizon)
    with distributed.running(params.train.device, train_dir(RUN), NAME) as job:  # one group: profile and chunks
        profiled = profile_first(params, placed, job, clock.now)
        if profiled.record is not None and placed.follows_wall_clock:  # the run began with its profile
            placed = dataclasses.replace(placed, began=profiled.record.clock_start)
        summary = follow(profiled.params, decision, placed, job, clock, say, pause)
        if summary is not None:
            attach_profile(summary, profiled)
            write_record(profiled)
            write_summary(RUN, summary)
    return summary


def follow(
    params: Params, decision: Decision, placed: Placement, job: distributed.Job, clock: Clock, say: Say,
    pause: Optional[Pause],
) -> dict | None:
    """Follow the plan: in one go, in the recorded chunks (simulated clock), or live, re-planning between chunks."""

    def one_segment(segment: Segment) -> dict | None:
        return train(params, RUN, segment, job, placed)

    if decision.mode != "interruptible" and (decision.clock == "simulated" or job.distributed):
        return one_segment(Segment())  # one go; torchrun ranks do not re-plan on their own
    steps_of_run, resume = total_steps(params, RUN), resume_folder(params, RUN, placed, job.world_size)
    if decision.clock == "simulated":
        say = say if job.is_main else quiet
        summary = follow_recorded_plan(decision.chunks, steps_of_run, one_segment, resume.done(), say, NAME)
    elif job.distributed:
        raise UsageError(
            "scheduler.mode: interruptible on the real clock runs as one process (torchrun ranks would each "
            "re-plan on their own); use one process or the simulated clock"
        )
    else:
        replan = held_idle(Replanner(params, decision, steps_of_run, clock, say, pause, NAME), params.energy, job,
                           resume, clock.now)
        summary = follow_live_plan(
            decision.chunks, steps_of_run, one_segment, resume.done, replan, clock.now, say, NAME, resume.folder
        )
    if summary is not None:  # rank 0: the chunks as they ran, beside the rest of the run's summary
        segment_log = summary["training_metrics"]["segment_log"]
        summary["scheduler_metrics"].update(chunk_metrics(segment_log, len(decision.chunks), decision.clock))
    return summary
