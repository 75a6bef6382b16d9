"""Pause-and-resume on carbon: the optimized run of an interruptible plan trains in the planned chunks.

Each chunk is one segment of the run (train.Segment): it trains, checkpoints once its share is done and stops; the
next chunk resumes from that checkpoint exactly, so the final model is the uninterrupted run's, byte for byte.

Simulated clock: the chunks are decision.json's. They were sized for scheduler.expected_duration, while the run
takes what it takes, so the work is split by optimizer steps: chunk k trains until round(total steps x the planned
time of chunks 1..k / the planned total), the last one to the end. A chunk's measurements start at its planned
start (or where the previous chunk ended, if that one ran over) and last as long as they really took: a chunk that
runs longer than planned shows so in the energy log. The pauses are recorded, not slept.

Real clock: a chunk trains until its planned end (a time budget). Then the run pauses: it re-plans the work left
(the time per step measured so far x the steps left) to be done by the first deadline, at the place wait-for-window
chose, and sleeps to the next chunk, re-fetching and re-planning every replan_interval as wait-for-window does.
SIGINT or SIGTERM during a pause stop the run with its checkpoint in place and the interruption recorded in the
resume folder; the same command resumes.
"""

from __future__ import annotations

import signal
from itertools import accumulate, pairwise
from typing import Callable, Optional, Sequence

from ..artifacts import read_json, write_json
from ..errors import SourceError, TrainingStopped, UsageError
from ..intensity.settings import carbon_for
from ..layout import resume_dir, run_metrics
from ..params import Params
from ..scheduling.clock import Clock, RealClock
from ..scheduling.decision import Decision, read_decision
from ..scheduling.planner import Chunk
from ..scheduling.waiting import Pause, wait_for_window
from ..signals import stop_requests
from ..timeutil import format_duration, iso, parse_instant
from . import distributed
from .loop import Segment, run_training, saved_state, total_steps, train

RUN = "optimized"  # the run wait-for-window schedules
INTERRUPTIONS = "pause-interruptions.json"  # in the resume folder: signals that stopped the pause in progress
SEGMENT_KEYS = ("segment", "clock_start", "clock_end", "first_step", "last_step")

MAPPING = {
    "simulated": (
        "simulated clock: chunk k trains until round(total steps x the planned time of chunks 1..k / the planned "
        "total), the last to the end; its measurements start at its planned start (or where the previous chunk "
        "ended, if that ran over) and last as long as they took; pauses are recorded, not slept"
    ),
    "real": (
        "real clock: a chunk trains until its planned end; between chunks the run sleeps, re-planning the work left "
        "(time per step so far x steps left) to be done by the first deadline; the last chunk trains to the end"
    ),
}


def train_run(
    params: Params,
    run_name: str,
    clock: Optional[Clock] = None,
    report: Callable[[str], None] = lambda line: None,
    pause: Optional[Pause] = None,
) -> dict | None:
    """Train `run_name`: the optimized run follows its plan's chunks, anything else runs in one go.

    On the real clock a flexible plan is followed too, as one chunk: DVC trains the baseline between
    wait-for-window and this stage, so the planned window may have passed; then the run re-plans and waits again.
    """
    if run_name != RUN:
        return run_training(params, run_name)
    decision = read_decision()
    job = distributed.start(params.train.device)  # one process group for all the chunks
    try:
        if decision.mode != "interruptible" and (decision.clock == "simulated" or job.distributed):
            return train(params, RUN, Segment(), job)  # one go; torchrun ranks do not re-plan on their own
        if decision.clock == "simulated":
            summary = follow_recorded_plan(params, decision, job, report if job.is_main else lambda line: None)
        else:
            summary = follow_live_plan(params, decision, job, clock or RealClock(), report, pause)
    finally:
        distributed.stop()
    if summary is not None:  # rank 0: the chunks as they ran, beside the rest of the run's summary
        chunks, pauses = chunk_report(summary["training_metrics"]["segment_log"], slept=decision.slept)
        summary["scheduler_metrics"].update(
            planned_chunks=len(decision.chunks),
            chunks=chunks,
            pauses=pauses,
            paused_seconds=sum(pause["seconds"] for pause in pauses),
            chunk_mapping=MAPPING[decision.clock],
        )
        write_json(run_metrics(RUN), summary)
    return summary


def step_targets(durations: Sequence[float], steps: int) -> list[int]:
    """Where each chunk but the last stops: round(steps x its cumulative share of the planned time)."""
    elapsed = list(accumulate(durations))
    return [round(steps * done / elapsed[-1]) for done in elapsed[:-1]]


def follow_recorded_plan(
    params: Params, decision: Decision, job: distributed.Job, report: Callable[[str], None]
) -> dict | None:
    chunks = [(chunk.start, chunk.end) for chunk in decision.chunks]
    steps = total_steps(params, RUN)
    targets = step_targets([end - start for start, end in chunks], steps)
    saved = saved_state(params, RUN)
    done = saved["step"] if saved else 0
    for index, ((start, end), target) in enumerate(zip(chunks, targets), start=1):
        if target <= done:  # trained before a restart, or a chunk too short for a step of its own
            continue
        note = {"chunk": index, "planned_start": iso(start), "planned_end": iso(end), "until_step": target}
        try:
            summary = train(params, RUN, Segment(clock_start=start, until_step=target, note=note), job)
        except TrainingStopped as stopped:
            if not stopped.planned:
                raise
            done = stopped.step
        else:  # its share reached the last step: the run finished here, the later chunks are not needed
            return summary
        report(
            f"train {RUN}: chunk {index} of {len(chunks)} done at step {done} of {steps}; paused until "
            f"{iso(chunks[index][0])} (simulated clock: recorded, not slept)"
        )
    start, end = chunks[-1]
    note = {"chunk": len(chunks), "planned_start": iso(start), "planned_end": iso(end), "until_step": None}
    return train(params, RUN, Segment(clock_start=start, note=note), job)


def follow_live_plan(
    params: Params, decision: Decision, job: distributed.Job, clock: Clock, report: Callable[[str], None],
    pause: Optional[Pause],
) -> dict | None:
    if job.distributed:
        raise UsageError(
            "scheduler.mode: interruptible on the real clock runs as one process (torchrun ranks would each "
            "re-plan on their own); use one process or the simulated clock"
        )
    steps = total_steps(params, RUN)
    submitted, planned, deadline = decision.submitted, decision.expected_duration, decision.deadline
    place = at_chosen_place(params, decision)
    interruptions_file = resume_dir(RUN) / INTERRUPTIONS
    saved = saved_state(params, RUN)
    interruptions = read_json(interruptions_file) if saved and interruptions_file.is_file() else []
    index = max((entry.get("chunk", 0) for entry in saved["segment_log"]), default=0) if saved else 0
    # A fresh run starts in the chunk wait-for-window waited for; a resumed one (or one outside that chunk) re-plans.
    chunks = [] if saved else list(decision.chunks)
    waited: dict = {}
    while True:
        step = saved["step"] if saved else 0
        if not chunks or not chunks[0].start <= clock.now() < chunks[0].end:
            left = work_left(saved, steps, planned)
            chunks, waited = next_chunks(place, clock, report, pause, submitted, deadline, left, chunks)
            if not chunks:  # a signal stopped the pause: record it beside the checkpoint, then stop
                where = "nothing trained yet"
                if saved:
                    interruptions.append({**waited, "after_step": step})
                    write_json(interruptions_file, interruptions)
                    where = f"checkpoint in {resume_dir(RUN)}/"
                raise TrainingStopped(
                    f"train {RUN}: stopped by {waited['signal']} while paused after step {step} of {steps}; "
                    f"{where}, run the same command to resume",
                    step,
                    signal.Signals[waited["signal"]].value,
                )
        current, later = chunks[0], chunks[1:]
        index += 1
        budget = float(current.end - clock.now()) if later else None  # a plain float: checkpoints hold no numpy
        note = {
            "chunk": index, "planned_start": iso(current.start), "planned_end": iso(current.end),
            "max_seconds": budget, **waited, "interruptions": interruptions,
        }
        try:
            return train(params, RUN, Segment(clock_start=clock.now(), max_seconds=budget, note=note), job)
        except TrainingStopped as stopped:
            if not stopped.planned:
                raise
        finally:
            interruptions_file.unlink(missing_ok=True)  # they are in this chunk's note now
        interruptions, chunks, waited = [], later, {}  # the plan's rest is kept if the re-plan's fetch fails
        saved = saved_state(params, RUN)
        report(f"train {RUN}: chunk {index} done at step {saved['step']} of {steps}; pausing")


def work_left(saved: dict | None, steps: int, planned: float) -> float:
    """Seconds of training left: the time per step measured so far (the planned one before any) x steps left."""
    if not saved or not saved["step"]:
        return planned
    return saved["seconds"] / saved["step"] * (steps - saved["step"])


def next_chunks(
    params: Params, clock: Clock, report: Callable[[str], None], pause: Optional[Pause],
    submitted: float, deadline: float, left: float, previous: list[Chunk],
) -> tuple[list[Chunk], dict]:
    """Plan the work left and sleep to its first chunk; ([], what happened) if a signal stopped the pause.

    A fetch that fails (with fallback on) keeps what is left of the plan being followed, as wait-for-window does
    (with nothing left, the rest runs now); with fallback off it is an error, the checkpoint in place.
    """
    now = clock.now()
    if left <= 0:  # only the final evaluation is left
        return [Chunk(now, now, 0.0)], {}
    if now + left >= deadline:  # no time to pause any more: the rest runs now, in one go
        return [Chunk(now, now + left, 0.0)], {"past_deadline": True}
    plan, planned_start, outcome = None, None, {"replans": 0, "replan_failures": []}
    with stop_requests(interrupt=True) as received:  # SIGTERM as well as SIGINT ends the pause
        try:
            try:
                waited = wait_for_next(params, clock, report, pause, submitted, deadline, left)
            except (SourceError, UsageError) as exc:
                if not params.carbon.fallback:
                    raise
                rest = [Chunk(max(c.start, now), c.end, c.mean_intensity) for c in previous if c.end > now]
                kept = "kept the plan made before" if rest else "no plan left: the rest runs now"
                rest = rest or [Chunk(now, now + left, 0.0)]
                outcome["replan_failures"] = [f"{iso(now)}: {exc}; {kept}"]
                report(f"re-plan failed: {exc}; {kept}")
                planned_start = rest[0].start
                clock.sleep(max(0.0, rest[0].start - now))
                plan = rest
            else:
                outcome.update(replans=waited.replans, replan_failures=waited.replan_failures)
                planned_start = waited.outlook.plan.start
                plan = list(waited.outlook.plan.chunks) if waited.started is not None else None
        except KeyboardInterrupt:  # in the first look ahead, or in the kept plan's sleep
            pass
    if plan is None:
        signum = received[0] if received else signal.SIGINT
        return [], {
            **outcome, "at": iso(clock.now()), "paused_since": iso(now), "signal": signal.Signals(signum).name,
            "planned_start": None if planned_start is None else iso(planned_start),
        }
    report(
        f"train {RUN}: {format_duration(left)} of work left in {len(plan)} chunk(s); "
        f"resuming after a {format_duration(clock.now() - now)} pause"
    )
    return plan, outcome


def wait_for_next(
    params: Params, clock: Clock, report: Callable[[str], None], pause: Optional[Pause],
    submitted: float, deadline: float, left: float,
):
    """wait-for-window's waiting loop for the work left, with its countdown where someone may watch the wall clock."""
    return wait_for_window(params, left, clock, report, pause, submitted, deadline)


def at_chosen_place(params: Params, decision: Decision) -> Params:
    """Params that plan only where wait-for-window put the job: the run is charged that place's intensities."""
    chosen = decision.chosen_place
    carbon = params.carbon
    if chosen > 0:
        place = carbon.alternatives[chosen - 1]
        carbon = carbon_for(carbon, place.source, place.region).model_copy(update={"sources": [place.source]})
    return params.model_copy(update={"carbon": carbon.model_copy(update={"alternatives": []})})


def chunk_report(segment_log: list[dict], slept: bool) -> tuple[list[dict], list[dict]]:
    """The chunks as they ran (planned and actual clock spans, steps) and the pauses between them, from the
    run's segment log (a chunk stopped and resumed spans several segments)."""
    chunks: dict[int, dict] = {}
    for entry in segment_log:
        if "chunk" not in entry:
            continue
        chunk = chunks.get(entry["chunk"])
        if chunk is None:
            chunk = chunks[entry["chunk"]] = {key: value for key, value in entry.items() if key not in SEGMENT_KEYS}
            chunk.update(start=entry["clock_start"], first_step=entry["first_step"], segments=0)
        chunk.update(end=entry["clock_end"], last_step=entry["last_step"], segments=chunk["segments"] + 1)
        chunk["steps"] = chunk["last_step"] - chunk["first_step"]
    ordered = [chunks[index] for index in sorted(chunks)]
    pauses = [
        {
            "after_chunk": before["chunk"],
            "start": before["end"],
            "end": after["start"],
            "seconds": parse_instant(after["start"]) - parse_instant(before["end"]),
            "slept": slept,
        }
        for before, after in pairwise(ordered)
    ]
    return ordered, pauses
