"""`carbon-pipe run --run NAME -- COMMAND`: your own training command as a run, placed on the clock as `train` places
its runs, its chunks followed as train-optimized follows them (command/ runs each segment).

`baseline`, and any name other than `optimized`, sits at the job's submission time and runs in one go: the
carbon-unaware reference. `optimized` sits where wait-for-window put it: in one go at the scheduled start (a flexible
plan, simulated clock), in the recorded plan's chunks (interruptible, simulated clock), or live, sleeping and
re-planning between chunks (real clock). The summary, with the chunks as they ran, is written once the command has
finished.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ..artifacts import holding
from ..config.params import Params
from ..errors import ArtifactError
from ..intensity.horizon import read_horizon
from ..layout import train_dir
from ..scheduling.clock import Clock, RealClock
from ..scheduling.decision import Decision, read_decision
from ..scheduling.replanning import Replanner
from ..scheduling.waiting import Pause, Say, quiet
from ..training.placement import Placement
from ..training.segments import Segment, chunk_metrics, follow_live_plan, follow_recorded_plan
from ..training.summary import write_summary

SCHEDULED = "optimized"  # the run wait-for-window schedules
MAPPING = {
    "simulated": (
        "simulated clock, a command: a step is one second of its run time; chunk k runs it until its run time "
        "reaches the planned time of chunks 1..k, then it gets SIGTERM and command.grace_period to exit; the last "
        "chunk runs it to completion; a chunk's measurements start at its planned start (or where the previous "
        "chunk ended, if that ran over) and last as long as they took; pauses are recorded, not slept"
    ),
    "real": (
        "real clock, a command: a step is one second of its run time; a chunk runs it until its planned end, then "
        "it gets SIGTERM and command.grace_period to exit; between chunks the run sleeps, re-planning the work left "
        "(the expected duration minus the run time so far) to be done by the first deadline; the last chunk runs "
        "it to completion"
    ),
}


def plan_here(params: Params, unplanned: str, say: Say) -> None:
    """Outside a pipeline, where no wait-for-window has run: plan now as it would (writing its files), either for
    the low-carbon window (`plan`: on the real clock, waiting for it) or to start at once (`now`)."""
    from ..config.base import replaced
    from .wait_for_window import run_stage as wait

    if unplanned == "now":
        params = params.model_copy(update={"scheduler": replaced(params.scheduler, "--unplanned", {"rule": "now"})})
    wait(params, say)


def run_stage(
    params: Params, name: str, argv: Sequence[str], say: Say = quiet, clock: Optional[Clock] = None,
    pause: Optional[Pause] = None, planned_here: bool = False,
) -> dict:
    """The run's summary, once the command exited 0 (metrics/<name>.json written). The run's folder is held for the
    whole run, as `train` holds it: a second run of that name (or `train --run` of it) is refused in one line.
    `planned_here`: the run follows the plan it made itself (plan_here), whatever its name."""
    from ..command.segment import CommandRun  # torch and CodeCarbon: only once a command is to be run

    horizon = read_horizon()
    decision = read_decision() if name == SCHEDULED or planned_here else None
    with holding(train_dir(name), f"run {name}"):
        if decision is None:
            run = CommandRun(params, name, argv, Placement.at_submission(horizon), say)
            summary = run(Segment())
        else:
            run = CommandRun(params, name, argv, Placement.scheduled(decision, horizon), say)
            summary = follow(params, decision, run, clock or RealClock(), say, pause)
        finish(run, summary)
    return summary


def finish(run, summary: dict) -> None:
    """The summary written, then the resume folder removed: a summary that cannot be written (a full disk, a
    file-size limit) leaves the run resumable, and the line says what is on disk."""
    try:
        write_summary(run.name, summary)
    except ArtifactError as exc:
        raise run.kept(exc, outputs_written=True) from None
    run.resume.remove()  # finished: a later run starts afresh


def follow(params: Params, decision: Decision, run, clock: Clock, say: Say, pause: Optional[Pause]) -> dict:
    """The plan followed with the command: in one go, in the recorded chunks, or live, re-planning between them."""
    if decision.mode != "interruptible" and decision.clock == "simulated":
        return run(Segment())
    title, seconds = f"run {run.name}", math.ceil(decision.expected_duration)  # the plan's work, in whole seconds
    if decision.clock == "simulated":
        summary = follow_recorded_plan(decision.chunks, seconds, run, run.progress(), say, title)
    else:
        replan = Replanner(params, decision, seconds, clock, say, pause, title)
        summary = follow_live_plan(
            decision.chunks, seconds, run, run.progress, replan, clock.now, say, title, run.resume.folder
        )
    segment_log = summary["training_metrics"]["segment_log"]
    summary["scheduler_metrics"].update(chunk_metrics(segment_log, len(decision.chunks), decision.clock))
    summary["scheduler_metrics"]["chunk_mapping"] = MAPPING[decision.clock]
    return summary
