"""The profile a training run carries: the paired energy profile, where it sat on the run's clock, and what it chose.

One model of the file (`RunProfileRecord`), one writer (`write_run_profile`: the train-optimized stage, in the run's
resume folder while the run is unfinished, so a resumed run does not profile again, then
`stages/train-optimized/profile.json`) and one reader (`read_run_profile`), which compare uses too. The figures are
rebuilt from the burst table on reading (`ProfileRecord.energy_profile`): a figure in the file is not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import Field

from ..artifacts import ArtifactModel, Count, Flag, Instant, Number, read_model, reason, write_model
from ..errors import ArtifactError
from ..training.run_summary import AutoChoice, ProfileStopping
from . import statistics
from .result import Burst, EnergyProfile, Interval, Stopping, describe, summarize

BASELINE = "baseline"


class BurstRecord(ArtifactModel):
    """One burst of the profile's table (profiling/result.py's Burst)."""

    round: int = Field(description="measured rounds count from 0, warm-up rounds from -warmup_rounds to -1")
    position: Count = Field(description="its place within its round")
    configuration: str = Field(description="the configuration it trained")
    steps: Count = Field(description="optimizer steps")
    samples: Count = Field(description="training samples")
    seconds: Number = Field(description="wall time (s)")
    joules: Number = Field(description="energy the counter moved (J)")
    process: Count = Field(description="the fresh worker process that ran it, from 0")
    warmup: Flag = Field(description="a warm-up burst: counted as energy spent only")

    def burst(self) -> Burst:
        return Burst(**self.model_dump(exclude={"warmup"}))


class IntervalRecord(ArtifactModel):
    value: Number = Field(description="the point estimate")
    low: Optional[Number] = Field(description="the 95 % interval's low end; null: unbounded")
    high: Optional[Number] = Field(description="its high end; null: unbounded")


class ConfigurationRecord(ArtifactModel):
    """One configuration's figures, as the profile stopped (recomputed from the bursts on reading)."""

    name: str = Field(description="baseline, optimized, or an auto candidate")
    precision: str = Field(description="the precision it trained in")
    steps_per_burst: Count = Field(description="optimizer steps per measured burst")
    j_per_sample: IntervalRecord = Field(description="energy per training sample (J)")
    s_per_sample: IntervalRecord = Field(description="time per training sample (s)")
    ratio: Optional[IntervalRecord] = Field(description="energy per sample over the baseline's; null: the baseline")
    verdict: Optional[str] = Field(description="less, more, or no measurable difference; null: the baseline")


class ProfileRecord(ArtifactModel):
    """The paired energy profile: its burst table and the figures made from it."""

    baseline: str = Field(description="the configuration the others are compared with")
    energy_method: str = Field(description="the energy counter, in words")
    interval_method: str = Field(description="how the intervals were made")
    processes: Count = Field(description="fresh worker processes measured")
    rounds: Count = Field(description="measured rounds in each process")
    warmup_rounds: Count = Field(description="warm-up rounds in each process")
    stopping: ProfileStopping = Field(description="why the profile stopped, and what it was allowed")
    profiling_energy_kwh: Number = Field(description="the bursts' energy, warm-up included (kWh)")
    profiling_seconds: Number = Field(description="the bursts' time (s)")
    configurations: list[ConfigurationRecord]
    bursts: list[BurstRecord]

    @classmethod
    def of(cls, profile: EnergyProfile) -> ProfileRecord:
        return cls.model_validate(profile.as_dict())

    def energy_profile(self) -> EnergyProfile:
        """Every figure rebuilt from the burst table by this code."""
        return summarize(
            [burst.burst() for burst in self.bursts],
            baseline=self.baseline,
            precisions={config.name: config.precision for config in self.configurations},
            energy_method=self.energy_method,
            stopping=Stopping(**self.stopping.model_dump()),
        )


class RunProfileRecord(ArtifactModel):
    """stages/train-optimized/profile.json: the run's profile, where it sat on the run's clock, and its verdict."""

    segments: list[Count] = Field(
        description="the run's segments that measured it, one per process when spread (phase profile in "
        "energy_intervals.csv)"
    )
    clock_start: Instant = Field(description="when its first process started on the pipeline clock (UTC)")
    clock_end: Instant = Field(description="when its last process ended (UTC)")
    trained: str = Field(description="the configuration the run trains: optimized, or auto's chosen candidate")
    ratio: Number = Field(description="the trained configuration's energy per sample over the baseline's")
    ratio_ci95: list[Optional[Number]] = Field(description="its 95 % interval [low, high]; null: unbounded")
    verdict: str = Field(description="less, more, or no measurable difference")
    verdict_text: str = Field(description="the verdict in words, with its interval and how it was measured")
    choice: Optional[AutoChoice] = Field(description="optimized.choose auto: the candidates and why")
    discarded_stale_checkpoint: Flag = Field(description="claiming the resume folder threw stale state away")
    profile: ProfileRecord


class NotProfiled(ArtifactModel):
    """stages/train-optimized/profile.json of a run that was not profiled (a DVC out all the same)."""

    skipped: str = Field(description="why the run was not profiled")


@dataclass(frozen=True)
class RunProfile:
    segments: tuple[int, ...]  # the run's segments that measured it (their energy is theirs, phase `profile`)
    clock_start: float  # its first process's start
    clock_end: float  # its last one's end
    trained: str  # the profiled configuration the run trains: optimized, or (auto) the chosen candidate
    profile: EnergyProfile
    choice: Optional[AutoChoice] = None  # auto: the budget, the candidates' table and why (profiling/candidates.py)
    discarded_stale_checkpoint: bool = False  # claiming the resume folder for the profile threw stale state away

    @property
    def ratio(self) -> Interval:
        """The trained configuration's energy per sample over the baseline's (1 exactly when it is the baseline)."""
        ratio = self.profile.configuration(self.trained).ratio
        return Interval(1.0, 1.0, 1.0) if ratio is None else ratio

    @property
    def verdict(self) -> str:
        return statistics.verdict(self.ratio.low, self.ratio.high)

    @property
    def under_way(self) -> bool:
        """A spread profile with processes still to run (only ever in the run's resume folder)."""
        return self.profile.stopping.reason == statistics.UNDER_WAY

    def verdict_text(self) -> str:
        """The verdict in words with its interval and how it was measured, e.g. 'the optimized configuration against
        the baseline, energy per sample: no measurable difference: within -4.1 % / +6.3 % (95 % sequential interval
        over 4 fresh processes x 2 rounds; stopped: budget spent; spent 38 J of its 40 J budget)'. No signed point
        effect where nothing is known."""
        if self.trained == BASELINE:
            return "auto chose the baseline's own configuration: no configuration effect (ratio 1 by construction)"
        which = "the optimized configuration" + (f" ({self.trained}, chosen by auto)" if self.choice else "")
        profile, stop = self.profile, self.profile.stopping
        how = (
            f"95 % sequential interval over {profile.processes} fresh processes x {profile.rounds} rounds; "
            f"stopped: {stop.reason}"
        )
        if stop.spent_joules is not None and stop.budget_joules:  # the budget kept or, said as plainly, overrun
            against = ", over" if stop.spent_joules > stop.budget_joules else " of"
            how += f"; spent {stop.spent_joules:.0f} J{against} its {stop.budget_joules:.0f} J budget"
        return f"{which} against the baseline, energy per sample: {describe(self.ratio)} ({how})"

    def record(self) -> RunProfileRecord:
        return RunProfileRecord(
            segments=list(self.segments),
            clock_start=self.clock_start,
            clock_end=self.clock_end,
            trained=self.trained,
            ratio=self.ratio.value,
            ratio_ci95=self.ratio.bounds,
            verdict=self.verdict,
            verdict_text=self.verdict_text(),
            choice=self.choice,
            discarded_stale_checkpoint=self.discarded_stale_checkpoint,
            profile=ProfileRecord.of(self.profile),
        )

    @classmethod
    def of(cls, record: RunProfileRecord) -> RunProfile:
        """The profile a record holds, its figures rebuilt from its bursts."""
        return cls(
            segments=tuple(record.segments),
            clock_start=record.clock_start,
            clock_end=record.clock_end,
            trained=record.trained,
            profile=record.profile.energy_profile(),
            choice=record.choice,
            discarded_stale_checkpoint=record.discarded_stale_checkpoint,
        )


def write_run_profile(path: Path, profile: RunProfile) -> None:
    write_model(path, profile.record())


def read_run_profile(path: Path) -> RunProfile:
    """A run's profile as train-optimized wrote it; one that is not (damaged, edited, another version's, bursts that
    make no profile) is one line naming the file."""
    what, again = "a run's profile train wrote", "remove it and run train --run optimized again"
    record = read_model(path, RunProfileRecord, what, again)
    measured = {config.name for config in record.profile.configurations}
    if not {record.trained, record.profile.baseline} <= measured:
        problem = f"trained {record.trained!r} or baseline {record.profile.baseline!r} is not one it measured"
        raise ArtifactError(f"{path}: not {what} ({problem}): {again}")
    try:
        profile = RunProfile.of(record)
    except (KeyError, ValueError) as exc:  # a configuration without measured bursts
        raise ArtifactError(f"{path}: not {what} (its bursts make no profile: {reason(exc)}): {again}") from None
    planned = profile.profile.stopping.planned_processes
    if profile.under_way and profile.profile.processes >= planned:  # a run would finish with it still under way
        problem = f"under way with {profile.profile.processes} of its {planned} planned processes run"
        raise ArtifactError(f"{path}: not {what} ({problem}): {again}")
    return profile
