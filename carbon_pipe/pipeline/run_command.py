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
from ..scheduling.wait_loop import ProgressLine, Sleeper, quiet
from ..training.following import Work, follow_plan
from ..training.placement import Placement
from ..training.run_summary import RunSummary, write_run_summary
from ..training.segments import Segment

SCHEDULED = "optimized"  # the run wait-for-window schedules
# How a plan's chunks map onto a command (scheduler_metrics.chunk_mapping; docs/scheduling.md): a step is one second
# of its run time. run-time-shares: chunk k runs it until its run time reaches the planned time of chunks 1..k, then
# SIGTERM and command.grace_period to exit, pauses recorded, not slept; time-budgets: a chunk runs it until its
# planned end, then the run sleeps, re-planning the work left by the first deadline (or, started by the queue, to
# the queue's next chunk). The last chunk runs to the end.
COMMAND_MAPPING = {"simulated": "run-time-shares", "real": "time-budgets"}


def planning_params(params: Params, unplanned: str) -> Params:
    """Outside a pipeline, where no wait-for-window has run, the CLI plans first as wait-for-window would (writing
    its files) with these params: for the low-carbon window (`plan`: on the real clock, waiting for it) or to start
    at once (`now`)."""
    from ..config.base import replaced

    if unplanned == "plan":
        return params
    return params.model_copy(update={"scheduler": replaced(params.scheduler, "--unplanned", {"rule": "now"})})


def run_stage(
    params: Params,
    name: str,
    argv: Sequence[str],
    say: ProgressLine = quiet,
    clock: Optional[Clock] = None,
    pause: Optional[Sleeper] = None,
    planned_here: bool = False,
) -> RunSummary:
    """The run's summary, once the command exited 0 (metrics/<name>.json written). The run's folder is held for the
    whole run, as `train` holds it: a second run of that name (or `train --run` of it) is refused in one line.
    `planned_here`: the run follows the plan made for it just before (planning_params), whatever its name."""
    from ..command.command_run import CommandRun  # torch and CodeCarbon: only once a command is to be run

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


def finish(run, summary: RunSummary) -> None:
    """The summary written, then the resume folder removed: a summary that cannot be written (a full disk, a
    file-size limit) leaves the run resumable, and the line says what is on disk."""
    try:
        write_run_summary(summary)
    except ArtifactError as exc:
        raise run.kept(exc, outputs_written=True) from None
    run.resume.remove()  # finished: a later run starts afresh


def follow(
    params: Params, decision: Decision, run, clock: Clock, say: ProgressLine, pause: Optional[Sleeper]
) -> RunSummary:
    """The plan followed with the command (training/following.py); its work is the plan's, in whole seconds."""
    title, seconds = f"run {run.name}", math.ceil(decision.expected_duration)

    def work() -> Work:
        return Work(
            seconds,
            run.progress,
            run.resume.folder,
            lambda: Replanner(params, decision, seconds, clock, say, pause, title),
        )

    return follow_plan(decision, run, work, COMMAND_MAPPING, say, title, clock.now)
