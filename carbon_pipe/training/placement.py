"""Where a run sits on the pipeline clock: where it starts (its placement), where each of its segments starts, and
its energy, measured per node and journalled on that clock as it comes, so a stopped segment's energy survives it.

The baseline, the carbon-unaware reference, starts when the job was submitted. The optimized run starts where
wait-for-window put it (simulated clock) or when it really started (real clock); pipeline/train_optimized.py places
it. Only real starts follow the wall clock; simulated and counterfactual placements put segments back to back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

from ..config.training import EnergyParams
from ..emissions.accounting import IDLE, TRAINING
from ..emissions.meter import EnergyJournal, EnergyMeter, MeterReading
from ..intensity.horizon import Horizon
from ..timeutil import iso
from . import distributed

if TYPE_CHECKING:
    from ..scheduling.decision import Decision
    from .resume import ResumeFolder
    from .segments import Segment

T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """The horizon a run is charged with, where on its clock the run starts, and why. `start` None: when it really
    starts, on the wall clock (after a real wait), so that its later segments follow the wall clock too."""

    horizon: Horizon
    start: Optional[float]
    why: str
    began: Optional[float] = None  # a real start that already began on the clock (the run's profile, before training)

    @classmethod
    def at_submission(cls, horizon: Horizon) -> Placement:
        return cls(horizon, horizon.submitted, "submission time (carbon-unaware: no waiting)")

    @classmethod
    def scheduled(cls, decision: Decision, horizon: Horizon) -> Placement:
        """The scheduled start (simulated clock), or when the run really starts after waiting (real clock)."""
        if horizon.simulated:
            return cls(horizon, decision.start, f"scheduled start ({decision.rule} rule, simulated clock)")
        return cls(horizon, None, "actual start after waiting (real clock)")

    @property
    def follows_wall_clock(self) -> bool:
        return self.start is None

    def run_start(self) -> float:
        """The run's start on the pipeline clock (for a real start: when it began, else now)."""
        if self.start is not None:
            return self.start
        return time.time() if self.began is None else self.began

    @property
    def fingerprint_clock(self) -> str:
        """What a checkpoint must share to be resumed: the start, or for a real start the submission it came from."""
        return iso(self.horizon.submitted if self.start is None else self.start)


class SegmentClock:
    """This segment's wall time placed on the pipeline clock: the segment's number in the run and where it starts."""

    def __init__(self, index: int, start: float) -> None:
        self.index, self.start = index, start
        self.wall_origin = time.time()  # moved to the energy meter's start when there is one

    def now(self, wall: Optional[float] = None) -> float:
        return self.start + ((time.time() if wall is None else wall) - self.wall_origin)


def place_segment(
    placement: Placement, segment: Segment, run_start: float, checkpoint_clock: Optional[float],
    resume: ResumeFolder, job: distributed.Job,
) -> SegmentClock:
    """Never before the previous segment (of any node) ended, nor before the last checkpoint (`checkpoint_clock`): a
    run does not overlap itself. A planned segment starts at its own start if that is later; on the wall clock a
    resumed one starts now; anything else starts back to back after the previous one (the time between attempts is
    not on this clock)."""
    earlier = EnergyJournal.read(resume.journal(job.node)) if job.tracks_energy else []
    index = next_segment(earlier, job)
    ended = [row["clock_end"] for row in earlier] + [run_start if checkpoint_clock is None else checkpoint_clock]
    previous_end = job.max(max(ended))
    if segment.clock_start is not None:
        return SegmentClock(index, float(max(segment.clock_start, previous_end)))  # plain: no numpy in checkpoints
    if placement.follows_wall_clock and index > 0:
        return SegmentClock(index, time.time())
    return SegmentClock(index, previous_end)


def next_segment(earlier: list[dict], job: distributed.Job) -> int:
    """The number of the run's next segment, after those in its journals (of every node)."""
    return int(job.max(max((row["segment"] for row in earlier), default=-1))) + 1


class Metering:
    """One tracker per node (local rank 0): CodeCarbon measures the segment from `start`; each interval goes to the
    node's journal, on the pipeline clock, as it is measured. A tracker that fails is noted, never fatal."""

    def __init__(
        self, energy: EnergyParams, job: distributed.Job, resume: ResumeFolder, clock: SegmentClock,
        phase: str = TRAINING,
    ) -> None:
        self.journal: Optional[EnergyJournal] = None
        self.meter: Optional[EnergyMeter] = None
        self.clock = clock
        if not job.tracks_energy:
            return
        self.journal = EnergyJournal(resume.journal(job.node), clock.index, job.node, clock.now, phase)
        self.meter = EnergyMeter(
            resume.folder,  # CodeCarbon appends a row per segment there; copied whole (atomically) at the end
            energy.country_iso_code,
            energy.measure_power_secs,
            on_interval=self.journal.append,
            tracking_mode="machine" if job.distributed else "process",  # under torchrun it measures the whole node
            output_file="emissions.csv" if job.node == 0 else f"emissions-node{job.node}.csv",
        )

    def start(self) -> None:
        """The segment's clock starts with the measurement."""
        self.clock.wall_origin = time.time()
        if self.meter is None:
            return
        self.meter.start(self.clock.wall_origin)
        if self.meter.error:
            self.journal.note_error(self.meter.error)

    def stop(self) -> Optional[MeterReading]:
        """Also on a stop or an error: the energy spent so far is journalled."""
        if self.meter is None:
            return None
        reading = self.meter.stop()
        if reading.error:
            self.journal.note_error(reading.error)
        return reading


def held_idle(
    replan: Callable[..., T], energy: EnergyParams, job: distributed.Job, resume: ResumeFolder, now: Callable[[], float]
) -> Callable[..., T]:
    """`replan`, metered: a real-clock pause keeps the process and its device, so the meter runs through it (a
    segment of phase idle), and the energy of holding the hardware idle is the run's."""

    def metered(*args, **kwargs) -> T:
        earlier = EnergyJournal.read(resume.journal(job.node)) if job.tracks_energy else []
        metering = Metering(energy, job, resume, SegmentClock(next_segment(earlier, job), now()), IDLE)
        metering.start()
        try:
            return replan(*args, **kwargs)
        finally:
            metering.stop()

    return metered
