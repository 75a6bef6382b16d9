"""The energy profile as the optimized run's first measured segment, before training.

It is metered and journalled like any segment of the run (phase `profile` in energy_intervals.csv), so its energy
is charged the intensity of when it ran and counted in the run's total, never hidden. The result waits in the run's
resume folder until the run finishes, so a resumed run does not profile again. With `optimized.choose: auto` it
also makes the choice (profiling/candidates.py), which the run then trains with, pinned.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
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
from ..training.placement import Metering, Placement, place_segment
from ..training.resume import ResumeFolder, resume_folder
from ..training.run_summary import AutoChoice, ProfileInterval, ProfileSection, ProfileStopping
from ..training.segments import Segment
from .candidates import choose_configuration
from .measure import run_profile
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


def profile_first(params: Params, placement: Placement, job: Job, now: Callable[[], float]) -> Profiled:
    """The run's profile: measured now as its next segment, or the one a stopped attempt of it left. `now` is the
    pipeline clock's, for a run that follows the wall clock."""
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
            record = measure_segment(params, placement, job, resume, discarded, now)
        except UsageError:  # refused before training (no candidate fits optimized.memory_budget_mb): nothing to resume
            resume.remove()
            raise
    return Profiled(pinned(params, record), record)


def measure_segment(
    params: Params, placement: Placement, job: Job, resume: ResumeFolder, discarded: bool, now: Callable[[], float]
) -> RunProfile:
    """Profile in a metered segment of the run. A signal meanwhile stops the run once the profile is recorded."""
    steady_allocator(params.train.steady_allocator)
    segment = Segment(clock_start=now() if placement.follows_wall_clock else None)
    clock = place_segment(placement, segment, placement.run_start(), None, resume, job)
    with stop_requests() as signals:  # from before the meter starts: its first interval can come during its start
        metering = Metering(params.energy, job, resume, clock, PROFILE)
        metering.start()
        try:
            trained, profile, choice = profile_configurations(params, job.device)
        finally:
            metering.stop()
    record = RunProfile(clock.index, clock.start, clock.now(), trained, profile, choice, discarded)
    write_run_profile(resume.folder / RECORD, record)
    if signals:
        raise TrainingStopped(
            f"train {RUN}: stopped by {signal.Signals(signals[0]).name} after its energy profile, before training; "
            f"run the same command to resume",
            0,
            signals[0],
        )
    return record


def profile_configurations(params: Params, device: torch.device) -> tuple[str, EnergyProfile, Optional[AutoChoice]]:
    """(the configuration the run trains, the paired profile, the auto choice or None)."""
    if params.optimized.choose == "auto":
        return choose_configuration(params, device)
    return RUN, run_profile(params), None


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
        segment=record.segment,
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
