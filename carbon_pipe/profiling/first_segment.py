"""The energy profile inside the optimized run: its first measured segment, before training, and with
`profile.spread` its later worker processes between equal shares of the run's optimizer steps.

Spread, the processes sample the run's minutes rather than its first half minute: what the machine does to the
ratio over minutes (measured here: 0.04 between batches of profiles 5 minutes apart, each agreeing within its own
processes' spread) is then between-process variance, inside the interval. Each process is a segment of the run
(phase `profile` in energy_intervals.csv), metered and journalled like any other, so its energy is charged the
intensity of when it ran and counted in the run's total, never hidden. The profile so far waits in the run's resume
folder until the run finishes, so a resumed run goes on from its last process. With `optimized.choose: auto` every
process runs first, before training: it makes the choice (profiling/candidates.py), which the run then trains with,
pinned; so does a run that is not one flexible segment on the simulated clock (spreads_over).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from ..artifacts import write_model
from ..config.params import Params
from ..emissions.accounting import PROFILE
from ..errors import TrainingStopped, UsageError
from ..layout import run_profile_file
from ..signals import stop_requests
from ..training.allocator import steady_allocator
from ..training.distributed import Job
from ..training.loop import total_steps, train
from ..training.placement import Metering, Placement, place_segment
from ..training.resume import ResumeFolder, resume_folder
from ..training.run_summary import AutoChoice, ProfileInterval, ProfileSection, ProfileStopping, RunSummary
from ..training.segments import Segment
from .candidates import choose_configuration
from .measure import Sequential, run_profile, say
from .record import NotProfiled, RunProfile, read_run_profile, write_run_profile
from .result import EnergyProfile, Interval

RUN = "optimized"
RECORD = run_profile_file(RUN).name  # in the resume folder until the run finishes, then beside the run's outputs


@dataclass(frozen=True)
class Profiled:
    """What the run trains with (auto: the chosen configuration pinned), and its profile, or why it has none."""

    params: Params
    record: Optional[RunProfile]
    skipped: Optional[str] = None


def spreads_over(params: Params, one_flexible_segment: bool) -> bool:
    """Whether the profile's processes are spread over the run: profile.spread, an explicit configuration (auto
    chooses before training) and a run that trains in one flexible segment on the simulated clock (a chunked or
    live plan places its own segments)."""
    return params.profile.spread and params.optimized.choose == "explicit" and one_flexible_segment


def profile_first(
    params: Params, placement: Placement, job: Job, now: Callable[[], float], spread: bool = False
) -> Profiled:
    """The run's profile: measured now as its next segment (spread: its first process only), or the one a stopped
    attempt of it left. `now` is the pipeline clock's, for a run that follows the wall clock."""
    if not params.profile.before_training:
        return Profiled(params, None, "not profiled: profile.before_training is false")
    if job.distributed:
        if params.optimized.choose == "auto":
            raise UsageError("optimized.choose: auto profiles in one process; under torchrun choose explicit")
        return Profiled(params, None, "not profiled: a torchrun job (the profile runs in one process)")
    resume = resume_folder(params, RUN, placement, job.world_size)
    discarded = resume.claim()
    saved = resume.folder / RECORD
    if saved.is_file():
        record = read_run_profile(saved)
    else:
        try:
            record = measure_segment(params, placement, job, resume, discarded, now, spread)
        except UsageError:  # refused before training (no candidate fits optimized.memory_budget_mb): nothing to resume
            resume.remove()
            raise
    return Profiled(pinned(params, record), record)


def measure_segment(
    params: Params, placement: Placement, job: Job, resume: ResumeFolder, discarded: bool, now: Callable[[], float],
    spread: bool = False, previous: Optional[RunProfile] = None,
) -> RunProfile:
    """Profile in a metered segment of the run: all of it, or (spread) its next process after `previous`. A signal
    meanwhile stops the run once the profile so far is recorded."""
    steady_allocator(params.train.steady_allocator)
    segment = Segment(clock_start=now() if placement.follows_wall_clock else None)
    clock = place_segment(placement, segment, placement.run_start(), None, resume, job)
    with stop_requests() as signals:  # from before the meter starts: its first interval can come during its start
        metering = Metering(params.energy, job, resume, clock, PROFILE)
        metering.start()
        try:
            trained, profile, choice = profile_configurations(params, job.device, spread, previous)
        finally:
            metering.stop()
    if previous is None:
        record = RunProfile((clock.index,), clock.start, clock.now(), trained, profile, choice, discarded)
    else:
        record = replace(previous, segments=(*previous.segments, clock.index), clock_end=clock.now(), profile=profile)
    write_run_profile(resume.folder / RECORD, record)
    if signals:
        raise TrainingStopped(
            f"train {RUN}: stopped by {signal.Signals(signals[0]).name} once its energy profile's process "
            f"{profile.processes} was recorded; run the same command to resume",
            0,
            signals[0],
        )
    return record


def profile_configurations(
    params: Params, device: torch.device, spread: bool, previous: Optional[RunProfile]
) -> tuple[str, EnergyProfile, Optional[AutoChoice]]:
    """(the configuration the run trains, the paired profile so far, the auto choice or None)."""
    if params.optimized.choose == "auto":
        return choose_configuration(params, device)
    if not spread:
        return RUN, run_profile(params), None
    profiling = Sequential.start(params) if previous is None else Sequential.resumed(params, previous.profile)
    profiling.next_process(say)
    return RUN, profiling.profile(), None


def train_between_processes(
    params: Params, placement: Placement, job: Job, profiled: Profiled, now: Callable[[], float]
) -> tuple[Optional[RunSummary], Profiled]:
    """Train the run in one go from its checkpoint, but for a spread profile under way: before its process k + 1
    the run trains to round(k / planned x its steps), so the planned processes sit at equal shares of the run
    (the first before any step). Once the profile stopped (settled early, or every planned process run), the rest
    trains in one segment. Returns the run's summary and its profile as it ended."""
    steps = total_steps(params, RUN)
    resume = resume_folder(params, RUN, placement, job.world_size)
    done = resume.done()
    step = done.step if done else 0  # then where each segment stopped, as follow_recorded_plan tracks it
    while True:
        record = profiled.record
        if record is None or not record.under_way:
            return train(params, RUN, Segment(), job, placement), profiled
        target = round(steps * record.profile.processes / record.profile.stopping.planned_processes)
        if step >= target:
            record = measure_segment(params, placement, job, resume, False, now, spread=True, previous=record)
            profiled = Profiled(profiled.params, record)
            continue
        try:
            return train(params, RUN, Segment(until_step=target), job, placement), profiled
        except TrainingStopped as stopped:
            if not stopped.planned:
                raise
            step = stopped.step


def pinned(params: Params, record: RunProfile) -> Params:
    """The params the run trains with: auto's choice written into the optimized section."""
    if record.choice is None:
        return params
    return params.model_copy(update={"optimized": params.optimized.model_copy(update=record.choice.configuration)})


def profile_section(profiled: Profiled, by_phase: dict[str, dict[str, float]]) -> ProfileSection:
    """The run summary's profile section: the verdict, what it cost (the meter's profile segment, from the run's
    `by_phase`) and, for auto, the choice; the bursts stay in stages/train-optimized/profile.json."""
    record = profiled.record
    if record is None:
        return ProfileSection(skipped=profiled.skipped)
    spent = by_phase.get(PROFILE, {})
    profile = record.profile
    trained, baseline = (profile.configuration(name) for name in (record.trained, profile.baseline))
    return ProfileSection(
        choice=record.choice,
        discarded_stale_checkpoint=record.discarded_stale_checkpoint,
        segments=list(record.segments),
        clock_start=record.clock_start,
        clock_end=record.clock_end,
        trained=record.trained,
        ratio=record.ratio.value,
        ratio_ci95=record.ratio.bounds,
        verdict=record.verdict,
        verdict_text=record.verdict_text(),
        energy_kwh=spent.get("energy_kwh"),  # the run's meter over the whole segment, setup included
        emissions_kg=spent.get("emissions_kg"),
        bursts_energy_kwh=profile.profiling_energy_kwh,  # the profile's own counter, bursts only
        counter=profile.energy_method,
        processes=profile.processes,
        rounds=profile.rounds,  # in each process
        warmup_rounds=profile.warmup_rounds,
        stopping=ProfileStopping(**profile.stopping.as_dict()),
        baseline_j_per_sample=interval(baseline.j_per_sample),
        trained_j_per_sample=interval(trained.j_per_sample),
        file=str(run_profile_file(RUN)),
    )


def interval(value: Interval) -> ProfileInterval:
    return ProfileInterval(value=value.value, ci95=value.bounds)


def write_record(profiled: Profiled) -> None:
    """stages/train-<run>/profile.json: the profile with its bursts, or why there is none (a DVC out either way)."""
    if profiled.record is None:
        write_model(run_profile_file(RUN), NotProfiled(skipped=profiled.skipped))
    else:
        write_run_profile(run_profile_file(RUN), profiled.record)
