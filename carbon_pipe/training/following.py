"""Following wait-for-window's plan with a run: in one go, in the recorded chunks (simulated clock) or live,
re-planning between chunks (real clock). Written once, for train-optimized (a segment trains) and `carbon-pipe run`
(a segment runs your command); the summary it returns carries the chunks as they ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .run_summary import RunSummary
from .segments import (
    Checkpointed,
    ProgressLine,
    Replan,
    RunSegment,
    Segment,
    chunk_metrics,
    follow_live_plan,
    follow_recorded_plan,
)

if TYPE_CHECKING:
    from ..scheduling.decision import Decision


@dataclass(frozen=True)
class Work:
    """A run to be followed in chunks: its size (optimizer steps, or a command's seconds of run time), what its
    checkpoint says is done, where it resumes from, and the re-planner between chunks (real clock)."""

    total: int
    done: Callable[[], Optional[Checkpointed]]
    resume: Path
    replan: Callable[[], Replan]  # made only on the real clock: it fetches intensities


def follow_plan(
    decision: Decision,
    run_segment: RunSegment,
    work: Callable[[], Work],
    mapping: dict[str, str],
    say: ProgressLine,
    title: str,
    now: Callable[[], float],
) -> Optional[RunSummary]:
    """The run's summary once it finished (None on torchrun ranks other than 0). A flexible plan on the simulated
    clock runs in one go at its start; otherwise the chunks are followed, `mapping[clock]` naming how they map onto
    the work."""
    if decision.mode != "interruptible" and decision.clock == "simulated":
        return run_segment(Segment())
    run = work()
    if decision.clock == "simulated":
        summary = follow_recorded_plan(decision.chunks, run.total, run_segment, run.done(), say, title)
    else:
        summary = follow_live_plan(
            decision.chunks, run.total, run_segment, run.done, run.replan(), now, say, title, run.resume
        )
    if summary is None:
        return None
    segment_log = summary.training_metrics.segment_log
    return summary.completed(chunks=chunk_metrics(segment_log, len(decision.chunks), decision.clock, mapping))
