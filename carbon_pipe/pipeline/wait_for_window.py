"""The wait-for-window stage: fetch the intensity horizon, plan, wait for the plan (real clock) or record it.

Writes the decision (scheduling/decision.py) and the horizon the train stages are charged with
(intensity/horizon.py). A rerun of a wait that was stopped or killed resumes it (scheduling/wait_resume.py).
An experiment the queue started in its slot ($CARBON_PIPE_QUEUE_SLOT, scheduling/queued.py) does not wait again:
it records the queue's slot.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

from ..artifacts import holding
from ..config.params import Params
from ..errors import Interrupted
from ..intensity.horizon import remove_horizon, write_horizon
from ..layout import DECISION_JSON, WINDOW_DIR
from ..scheduling.clock import Clock, make_clock
from ..scheduling.decision import Decision, decided, undecided, write_decision
from ..scheduling.duration import DurationEstimate
from ..scheduling.outlook import check_reach, look_ahead
from ..scheduling.queued import QueueSlot, queue_slot
from ..scheduling.wait_loop import ProgressLine, Waited, quiet, wait_for_window
from ..scheduling.wait_resume import begin_wait
from ..signals import stop_requests, stopped_by
from ..timeutil import iso
from ..training.duration import expected_duration


def run_stage(
    params: Params, say: ProgressLine = quiet, clock: Optional[Clock] = None, **source_options: Any
) -> Decision:
    """Plan (and on the real clock wait) holding the stage's folder: a second wait on the project is refused, as
    two would share one resumable state and overwrite each other's decision."""
    estimate = expected_duration(params)
    check_reach(params, estimate.seconds)  # bad params first: one line, and not even a lock file written
    slot = queue_slot()
    with holding(WINDOW_DIR, "wait-for-window"):
        if slot is not None:
            return _queued(params, slot, **source_options)
        return _wait(params, estimate, say, clock or make_clock(params), **source_options)


def _queued(params: Params, slot: QueueSlot, **source_options: Any) -> Decision:
    """Started by the queue in its slot: the intensities from the entry's arrival (its saving is against starting
    then), the slot as the plan, no wait. A whole entry is recorded, not slept, at the moment it really started: the
    train stages charge the run there and do not wait again. An interruptible one is on the real clock: its run
    pauses between the queue's chunks (and only there), each charged when it really runs."""
    started = time.time()
    duration = slot.duration
    if slot.chunks:
        scheduler = params.scheduler.model_copy(update={"clock": "real", "mode": "interruptible"})
        until: Optional[float] = max(slot.end, started + duration)
    else:
        scheduler = params.scheduler.model_copy(update={"clock": "simulated", "now": started})
        until = None
    params = params.model_copy(update={"scheduler": scheduler})
    outlook = look_ahead(params, slot.arrival, started, duration, until, **source_options)
    outlook = dataclasses.replace(outlook, plan=slot.plan(outlook.series, started))
    estimate = DurationEstimate(duration, "queue", f"the queue's expected duration for entry {slot.entry}")
    decision = decided(params, Waited(outlook, started, slot.arrival, 0, []), estimate)
    write_horizon(decision.horizon)
    write_decision(decision)
    return decision


def _wait(
    params: Params, estimate: DurationEstimate, say: ProgressLine, clock: Clock, **source_options: Any
) -> Decision:
    state = begin_wait(params, clock.now(), say)
    waited: Optional[Waited] = None
    # SIGTERM ends a wait as Ctrl-C does, with what is known recorded: in the first fetch too.
    with stop_requests(interrupt=True) as received:
        try:
            waited = wait_for_window(
                params, estimate.seconds, clock, say, submitted=state.submitted, on_plan=state.planned, **source_options
            )
        except KeyboardInterrupt:  # in the first fetch, before any plan
            pass
    stopped = None if waited is not None and waited.started is not None else stopped_by(received)
    if stopped is not None:
        state.stopped(stopped.name, clock.now())
    if waited is None:
        decision = undecided(params, state.submitted, estimate)
    else:
        decision = decided(params, waited, estimate)
    decision = decision.model_copy(
        update={"signal": None if stopped is None else stopped.name, "resumed_wait": state.record()}
    )
    if waited is None:
        remove_horizon()
    else:
        write_horizon(decision.horizon)
    write_decision(decision)
    if stopped is None:
        state.remove()  # decided: nothing left to resume
        return decision
    where = "before the planned start" if waited is not None else "during the first fetch, before any plan"
    raise Interrupted(
        f"wait-for-window: stopped by {stopped.name} at {iso(clock.now())} {where}; recorded in {DECISION_JSON}",
        stopped,
    )
