"""Segments: a run trained in pieces. A Segment is one call's share of the run (a budget of optimizer steps or
seconds, and the earliest place on the clock it may start); a run stopped at the end of one resumes exactly.

Following a plan's chunks is written here once, for whatever trains a segment (`RunSegment`: it returns the run's
summary once the run finished, or raises TrainingStopped when the segment's budget is spent):

- a recorded plan (simulated clock): the chunks were sized for the expected duration, while the run takes what it
  takes, so the work is split by optimizer steps: chunk k trains until round(total steps x the planned time of
  chunks 1..k / the planned total), the last one to the end. A chunk's measurements start at its planned start
  (or where the previous chunk ended, if that one ran over) and last as long as they really took. The pauses are
  recorded, not slept.
- a live plan (real clock): a chunk trains until its planned end (a time budget). Then the run pauses, and a
  re-planner (injected: scheduling/replanning.py for train-optimized) plans the work left and sleeps to the next
  chunk. A signal during a pause stops the run with its checkpoint in place and the interruption recorded in the
  resume folder; the same command resumes.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

from pydantic import TypeAdapter, ValidationError

from ..artifacts import FROM_FILE, problem, read_json, write_json
from ..errors import ArtifactError, TrainingStopped
from ..timeutil import iso, parse_instant
from .run_summary import ChunkNote, ChunkPause, ChunkRun, PauseInterruption, RunSummary, SegmentEntry

INTERRUPTIONS = "pause-interruptions.json"  # in the resume folder: signals that stopped the pause in progress

# How a plan's chunks map onto a `train` run's work (scheduler_metrics.chunk_mapping; docs/scheduling.md):
# step-shares: chunk k trains until round(total steps x the planned time of chunks 1..k / the planned total), its
# measurements from its planned start, pauses recorded, not slept; time-budgets: a chunk trains until its planned
# end, then the run sleeps, re-planning the work left by the first deadline (or, started by the queue, to the
# queue's next chunk).
TRAIN_MAPPING = {"simulated": "step-shares", "real": "time-budgets"}


PAUSE_INTERRUPTIONS = TypeAdapter(list[PauseInterruption])


def read_interruptions(path: Path) -> list[PauseInterruption]:
    """The pause interruptions recorded in the resume folder; a damaged file is one line naming it."""
    try:
        return PAUSE_INTERRUPTIONS.validate_python(read_json(path), context=FROM_FILE)
    except ValidationError as exc:
        raise ArtifactError(
            f"{path}: not the pause interruptions carbon-pipe wrote ({problem(exc)}): delete it and run the same "
            "command to resume (the record of those interruptions goes with it)"
        ) from None


def write_interruptions(path: Path, interruptions: list[PauseInterruption]) -> None:
    write_json(path, [interruption.to_json() for interruption in interruptions])


@dataclass(frozen=True)
class Segment:
    """How much of the run one call trains, and where that sits on the pipeline clock.

    The default trains to the end. A caller that pauses the run passes a budget: the run checkpoints and raises
    TrainingStopped when it is spent (at once if it already is), and the next call resumes it, at the next
    `clock_start` it is given. `note` is kept with the segment in the run's segment log (which planned chunk it
    trains).
    """

    clock_start: float | None = None  # the earliest start; None: where the previous segment ended (real clock: now)
    until_step: int | None = None  # stop once the run has made this many optimizer steps
    max_seconds: float | None = None  # stop after this much wall time in this segment
    note: ChunkNote = ChunkNote()  # frozen: one default shared is safe


def stop_reason(signals: list[int], segment: Segment, step: int, segment_seconds: float, last: bool) -> str | None:
    """Why the run stops after this step, if it does: a signal, or the segment's budget (never the last step's)."""
    if signals:
        return f"stopped by {signal.Signals(signals[0]).name}"
    if last:  # only the final evaluation is left: a budget does not split it off into a segment of its own
        return None
    if segment.until_step is not None and step >= segment.until_step:
        return "paused as planned (step budget)"
    if segment.max_seconds is not None and segment_seconds >= segment.max_seconds:
        return "paused as planned (time budget)"
    return None


RunSegment = Callable[[Segment], "Optional[RunSummary]"]  # the run's summary once it finished (None off rank 0)
ProgressLine = Callable[[str], None]


class Span(Protocol):
    """A planned chunk: [start, end) on the pipeline clock."""

    start: float
    end: float


@dataclass(frozen=True)
class Checkpointed:
    """What a run has done so far, as its latest checkpoint says."""

    step: int  # optimizer steps
    seconds: float  # the training time they took
    chunk: int  # the last planned chunk it trained in (0: none)


class Replan(Protocol):
    def __call__(self, step: int, seconds: float, previous: list) -> tuple[list, dict]:
        """Plan the work left after `step` optimizer steps that took `seconds`, and sleep to its first chunk: (the
        chunks, what happened), or ([], what happened, with the `signal`) if a signal stopped the pause.
        `previous` is what is left of the plan being followed."""


def step_targets(durations: Sequence[float], steps: int) -> list[int]:
    """Where each chunk but the last stops: round(steps x its cumulative share of the planned time)."""
    elapsed = list(accumulate(durations))
    return [round(steps * done / elapsed[-1]) for done in elapsed[:-1]]


def _note(index: int, chunk: Span, **extra: Any) -> ChunkNote:
    return ChunkNote(chunk=index, planned_start=iso(chunk.start), planned_end=iso(chunk.end), **extra)


def follow_recorded_plan(
    chunks: Sequence[Span],
    total_steps: int,
    run_segment: RunSegment,
    done: Optional[Checkpointed],
    say: Callable[[str], None],
    name: str,
) -> Optional[RunSummary]:
    """Train the run `name` of `total_steps` optimizer steps in the recorded `chunks`, from what is `done` already."""
    targets = step_targets([chunk.end - chunk.start for chunk in chunks], total_steps)
    step = done.step if done else 0
    for index, (chunk, target) in enumerate(zip(chunks, targets), start=1):
        if target <= step:  # trained before a restart, or a chunk too short for a step of its own
            continue
        budget = Segment(clock_start=chunk.start, until_step=target, note=_note(index, chunk, until_step=target))
        try:
            return run_segment(budget)  # its share reached the last step: the later chunks are not needed
        except TrainingStopped as stopped:
            if not stopped.planned:
                raise
            step = stopped.step
        say(
            f"{name}: chunk {index} of {len(chunks)} done at step {step} of {total_steps}; paused until "
            f"{iso(chunks[index].start)} (simulated clock: recorded, not slept)"
        )
    last = chunks[-1]
    return run_segment(Segment(clock_start=last.start, note=_note(len(chunks), last, until_step=None)))


def follow_live_plan(
    chunks: Sequence[Span],
    total_steps: int,
    run_segment: RunSegment,
    progress: Callable[[], Optional[Checkpointed]],
    replan: Replan,
    now: Callable[[], float],
    say: Callable[[str], None],
    name: str,
    resume: Path,
) -> Optional[RunSummary]:
    """Train the run `name` in `chunks` on the wall clock (`now`), re-planning between them, from its checkpoint in
    the folder `resume`. A fresh run starts in the first chunk; a resumed one (or one outside that chunk) re-plans."""
    interruptions_file = resume / INTERRUPTIONS
    done = progress()
    interruptions = read_interruptions(interruptions_file) if done and interruptions_file.is_file() else []
    index, chunks, waited = done.chunk if done else 0, [] if done else list(chunks), {}
    while True:
        step = done.step if done else 0
        if not chunks or not chunks[0].start <= now() < chunks[0].end:
            chunks, waited = replan(step, done.seconds if done else 0.0, chunks)
            if not chunks:  # a signal stopped the pause: record it beside the checkpoint, then stop
                interruption = PauseInterruption.model_validate({**waited, "after_step": step})
                where = "nothing trained yet"
                if done:
                    write_interruptions(interruptions_file, [*interruptions, interruption])
                    where = f"checkpoint in {resume}/"
                raise TrainingStopped(
                    f"{name}: stopped by {interruption.signal} while paused after step {step} of {total_steps}; "
                    f"{where}, run the same command to resume",
                    step,
                    signal.Signals[interruption.signal].value,
                )
        current, later = chunks[0], chunks[1:]
        index += 1
        budget = float(current.end - now()) if later else None  # a plain float: checkpoints hold no numpy
        note = _note(index, current, max_seconds=budget, **waited, interruptions=interruptions)
        try:
            return run_segment(Segment(clock_start=now(), max_seconds=budget, note=note))
        except TrainingStopped as stopped:
            if not stopped.planned:
                raise
        finally:
            interruptions_file.unlink(missing_ok=True)  # they are in this chunk's note now
        interruptions, chunks, waited = [], later, {}  # the plan's rest is kept if the re-plan's fetch fails
        done = progress()
        say(f"{name}: chunk {index} done at step {done.step} of {total_steps}; pausing")


def chunk_metrics(
    segment_log: list[SegmentEntry], planned_chunks: int, clock: str, mapping: dict[str, str]
) -> dict[str, Any]:
    """For the run's scheduler_metrics: the chunks as they ran, the pauses between them, and how chunks mapped."""
    chunks, pauses = chunks_as_run(segment_log, slept=clock == "real")
    return dict(
        planned_chunks=planned_chunks,
        chunks=chunks,
        pauses=pauses,
        paused_seconds=sum(gap.seconds for gap in pauses),
        chunk_mapping=mapping[clock],
    )


def chunks_as_run(segment_log: list[SegmentEntry], slept: bool) -> tuple[list[ChunkRun], list[ChunkPause]]:
    """The chunks as they ran (planned and actual clock spans, steps) and the pauses between them, from the
    run's segment log (a chunk stopped and resumed spans several segments)."""
    spans: dict[int, list[SegmentEntry]] = {}
    for entry in segment_log:
        if entry.chunk is not None:
            spans.setdefault(entry.chunk, []).append(entry)
    ordered = [ChunkRun.spanning(spans[index]) for index in sorted(spans)]
    pauses = [
        ChunkPause(
            after_chunk=before.chunk,
            start=before.end,
            end=after.start,
            seconds=parse_instant(after.start) - parse_instant(before.end),
            slept=slept,
        )
        for before, after in pairwise(ordered)
    ]
    return ordered, pauses
