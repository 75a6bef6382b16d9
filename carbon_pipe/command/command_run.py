"""One segment of a command run: the command launched where the segment sits on the pipeline clock, measured while it
runs, stopped when the segment's time budget is spent, and what it did kept in the resume folder.

A `CommandRun` is what the chunk follower (training/segments.py) calls for each segment, as `train` is for the
built-in loop. Its unit of progress is the command's run time: a "step" is one whole second of it, so chunk k of a
recorded plan runs the command until its run time reaches the planned time of chunks 1..k, and the last chunk runs it
to completion. A command that is still running when its budget is spent gets SIGTERM (its whole process group), then
`command.grace_period` to checkpoint and exit before SIGKILL; unless it exited 0 (its training is complete), the next
segment launches it again, and it resumes from its own checkpoint. The resume folder (stages/train-<run>/resume/,
not a DVC out) holds the energy journal, the progress so far, the command's checkpoint folder and the figures it
reports, so `dvc repro` resumes too.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config.params import Params
from ..emissions.meter import MeterReading
from ..errors import ArtifactError, CommandFailed, TrainingStopped
from ..layout import resume_dir, run_metrics, train_dir
from ..secrets import withheld
from ..timeutil import format_duration, iso
from ..training import distributed
from ..training.placement import Metering, Placement, SegmentClock, place_segment
from ..training.resume import ResumeFolder, fingerprint
from ..training.run_summary import Launch, RunSummary, SegmentEntry, write_run_summary
from ..training.segments import Checkpointed, Segment
from .outputs import account
from .process import Command, Ending, passed_on
from .progress import Progress

CHECKPOINTS = "checkpoint"  # the command's own checkpoint folder: $CARBON_PIPE_CHECKPOINT_DIR
REPORTED = "metrics.json"  # what the command reports: $CARBON_PIPE_METRICS


def budget_of(segment: Segment, seconds_so_far: float) -> Optional[float]:
    """Seconds this segment may run the command: its own budget, or what is left to the run time it ends at."""
    budgets = [segment.max_seconds] if segment.max_seconds is not None else []
    if segment.until_step is not None:
        budgets.append(segment.until_step - seconds_so_far)
    return min(budgets) if budgets else None


class CommandRun:
    """The run `name` of the command `argv`, placed on the clock by `placement`: call it with each Segment."""

    def __init__(
        self, params: Params, name: str, argv: Sequence[str], placement: Placement, say: Callable[[str], None]
    ) -> None:
        self.params, self.name, self.argv, self.placement, self.say = params, name, list(argv), placement, say
        # Whose resume folder it is: the command line (settings belong on it: ${...} in dvc.yaml) and the clock.
        self.resume = ResumeFolder(
            resume_dir(name), fingerprint(command=self.argv, clock=placement.fingerprint_clock)
        )
        self.discarded: Optional[bool] = None  # whether a stale resume folder was thrown away at the first segment

    @property
    def reported_file(self) -> Path:
        return self.resume.folder / REPORTED

    def progress(self) -> Optional[Checkpointed]:
        return Progress.read(self.resume.folder, self.resume.fingerprint).done()

    def environment(self) -> dict[str, str]:
        """carbon-pipe's environment without the intensity sources' credentials (training never needs them, and a
        command that prints its environment would show them), and the run's folders."""
        checkpoints = self.resume.folder / CHECKPOINTS
        checkpoints.mkdir(parents=True, exist_ok=True)
        train_dir(self.name).mkdir(parents=True, exist_ok=True)
        return {
            **withheld(os.environ),
            "CARBON_PIPE_RUN": self.name,
            "CARBON_PIPE_OUT": str(train_dir(self.name).resolve()),
            "CARBON_PIPE_METRICS": str(self.reported_file.resolve()),
            "CARBON_PIPE_CHECKPOINT_DIR": str(checkpoints.resolve()),
        }

    def __call__(self, segment: Segment) -> Optional[RunSummary]:
        """Run the command for `segment`. Returns the run's summary once it exited 0 (its artifacts written); raises
        TrainingStopped when the budget was spent or a signal stopped it, CommandFailed when it failed."""
        discarded = self.resume.claim()
        self.discarded = discarded if self.discarded is None else self.discarded
        progress = Progress.read(self.resume.folder, self.resume.fingerprint)
        budget = budget_of(segment, progress.seconds)
        if budget is not None and budget <= 0:
            raise TrainingStopped(f"run {self.name}: nothing to do in this segment, its budget is spent", progress.step)
        job = distributed.one_process(None)  # one command, measured in process mode with its tree
        run_start = self.placement.run_start()
        clock = place_segment(self.placement, segment, run_start, progress.clock, self.resume, job)
        metering = Metering(self.params.energy, job, self.resume, clock)  # CodeCarbon set up before the launch
        with passed_on() as signals:
            command = Command(self.argv, self.environment())
            try:
                command.start(signals)
            except CommandFailed:
                if not progress.segment_log:  # never launched: nothing to resume, nothing left behind
                    self.resume.remove()
                raise
            metering.start()  # just after the launch: the command is there when the tracker takes its baseline
            ending = command.wait(budget, self.params.command.grace_period, signals)
            exited = time.time()
            intact = self.resume.owned()  # before the meter's last write, which makes the folder again if need be
            reading = metering.stop()  # the command is a zombie still: its last CPU time is counted
            command.finish()
            if not intact:
                raise self.state_lost()
            self.record(progress, segment, clock, ending, exited, command)
        if signals.received and ending.passed_on is None and ending.paused and ending.status != 0:
            ending = replace(ending, passed_on=signals.received[0])  # it came as the command paused: a stop
        return self.outcome(progress, ending, reading, run_start)

    def record(
        self, progress: Progress, segment: Segment, clock: SegmentClock, ending: Ending, exited: float,
        command: Command,
    ) -> None:
        """The launch's run time (to its exit) and place on the clock, kept in the resume folder."""
        seconds, first_step = exited - clock.wall_origin, progress.step
        progress.seconds += seconds
        progress.clock = clock.now(exited)
        progress.segment_log.append(
            SegmentEntry.of(
                clock.index, segment.note, iso(clock.start), first_step, iso(progress.clock), progress.step
            )
        )
        progress.endings.append(
            Launch.model_validate(
                {
                    "segment": clock.index, "seconds": seconds, "cpu_seconds": command.cpu_seconds,
                    **ending.record(), "escaped_ended": command.escaped,
                }
            )
        )
        sampled = [mb for mb in (progress.peak_rss_mb, command.peak_rss_mb) if mb is not None]
        progress.peak_rss_mb = max(sampled, default=None)  # None: every launch ended before its first sample
        progress.save(self.resume.folder)
        if command.escaped:
            names = ", ".join(f"{found['name']} {found['pid']}" for found in command.escaped)
            self.say(
                f"run {self.name}: the command left {len(command.escaped)} process(es) running outside its process "
                f"group ({names}): measured while they ran, then ended"
            )
        if ending.paused and ending.killed:
            self.say(
                f"run {self.name}: the command did not exit within command.grace_period "
                f"({format_duration(self.params.command.grace_period)}) of SIGTERM and was killed; "
                "it resumes from its last checkpoint"
            )

    def state_lost(self) -> ArtifactError:
        """The command removed (or replaced) carbon-pipe's resume folder while it ran: what was measured before that is
        gone, so no honest account of the run is left; the rest goes too, and the next run starts afresh."""
        self.resume.remove()
        return ArtifactError(
            f"run {self.name}: the command removed or changed {self.resume.folder}/ while it ran (carbon-pipe's energy "
            "journal and progress; its own files belong in $CARBON_PIPE_CHECKPOINT_DIR): the run's energy cannot be "
            "accounted; nothing was written, run it again to start afresh"
        )

    def kept(self, exc: ArtifactError, outputs_written: bool = False) -> ArtifactError:
        """A write that failed once the command had ended: the run stays resumable, and the line says what is where."""
        written = (
            f"its energy_intervals.csv, epochs.csv and CodeCarbon log are in {train_dir(self.name)}/, its summary is "
            "not: " if outputs_written else ""
        )
        return ArtifactError(
            f"run {self.name}: {written}{exc}; {self.resume.folder}/ is kept (its energy journal and progress): free "
            "space and run the same command to write the run's files"
        )

    def outcome(
        self, progress: Progress, ending: Ending, reading: Optional[MeterReading], run_start: float
    ) -> Optional[RunSummary]:
        ran = f"after {format_duration(progress.seconds)} of run time"
        if ending.passed_on is not None:
            raise TrainingStopped(
                f"run {self.name}: stopped by {signal.Signals(ending.passed_on).name} (the command: "
                f"{ending.describe()}) {ran}; its energy is journalled in {self.resume.folder}/, run the same "
                "command to resume",
                progress.step,
                ending.passed_on,
            )
        if ending.paused and ending.status != 0:  # exit code 0 says the training is complete, SIGTERM or not
            raise TrainingStopped(f"run {self.name}: paused as planned (time budget) {ran}", progress.step)
        try:
            summary = account(self, progress, reading, ending, run_start)
        except ArtifactError as exc:
            raise self.kept(exc) from None
        if ending.status == 0:  # the caller writes the summary, then removes the resume folder
            return summary
        write_run_summary(summary)  # what the failed run spent, reported, never lost
        raise CommandFailed(
            f"run {self.name}: the command failed ({ending.describe()}) {ran}; its energy so far is in "
            f"{run_metrics(self.name)} and {train_dir(self.name)}/energy_intervals.csv, and {self.resume.folder}/ is "
            "kept: run the same command to resume",
            ending.status,
        )
