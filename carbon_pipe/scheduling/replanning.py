"""Between the chunks of an interruptible run on the real clock: plan the work left and sleep to its first chunk.

The work left is the time per step measured so far x the steps left; it is planned at the place wait-for-window
chose, to be done by the first deadline, and waited for with wait-for-window's own loop (re-fetching and
re-planning every replan_interval, the countdown on a real clock). A run the queue started in chunks is not
re-planned: it sleeps to the queue's next chunk (under SLURM it exits, and that chunk's job resumes it), as the
queue gave its pauses to other entries. pipeline/
train_optimized.py and pipeline/run_command.py hand a Replanner to the chunk follower (training/segments.py); nothing
here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..config.carbon import carbon_for
from ..config.params import Params
from ..errors import TrainingStopped
from ..intensity.sources import on_source_failure
from ..signals import stop_requests, stopped_by
from ..timeutil import format_duration, iso
from .clock import Clock
from .decision import Decision
from .planner import Chunk
from .queued import PauseMarker, queue_slot
from .wait_loop import ProgressLine, Sleeper, wait_for_window


def at_chosen_place(params: Params, decision: Decision) -> Params:
    """Params that plan only where wait-for-window put the job: the run is charged that place's intensities."""
    carbon = params.carbon
    if decision.chosen_place > 0:
        place = carbon.alternatives[decision.chosen_place - 1]
        carbon = carbon_for(carbon, place.source, place.region).model_copy(update={"sources": [place.source]})
    return params.model_copy(update={"carbon": carbon.model_copy(update={"alternatives": []})})


def chunks_from(chunks: Sequence[Chunk], moment: float) -> list[Chunk]:
    """What is left of `chunks` from `moment` on: those not over, the one under way cut to start there."""
    return [Chunk(max(chunk.start, moment), chunk.end, chunk.mean_intensity) for chunk in chunks if chunk.end > moment]


def work_left(step: int, seconds: float, total_steps: int, planned: float) -> float:
    """Seconds of training left: the time per step measured so far (the planned one before any) x the steps left."""
    if not step:
        return planned
    return seconds / step * (total_steps - step)


# A pause under SLURM shorter than this is slept, not handed back: a job SLURM began a moment before its chunk (it
# keeps whole seconds) sleeps that moment out rather than hand back a chunk that no later job would run.
HAND_BACK_AFTER = 30.0


class Replanner:
    """What the chunk follower calls between chunks: (the chunks to follow, what happened), or ([], what happened,
    with the `signal`) if SIGINT or SIGTERM stopped the pause."""

    def __init__(
        self,
        params: Params,
        decision: Decision,
        total_steps: int,
        clock: Clock,
        say: ProgressLine,
        pause: Optional[Sleeper],
        name: str,
    ) -> None:
        self.params, self.decision, self.total_steps = at_chosen_place(params, decision), decision, total_steps
        self.clock, self.say, self.pause, self.name = clock, say, pause, name
        self.planned_start: Optional[float] = None  # of the plan being waited for, if any

    def __call__(self, step: int, seconds: float, previous: list[Chunk]) -> tuple[list[Chunk], dict]:
        left = work_left(step, seconds, self.total_steps, self.decision.expected_duration)
        now = self.clock.now()
        if left <= 0:  # only the final evaluation is left
            return [Chunk(now, now, 0.0)], {}
        queued = self.decision.rule == "queue"
        if not queued and now + left >= self.decision.deadline:  # no time to pause any more: the rest runs now
            return [Chunk(now, now + left, 0.0)], {"past_deadline": True}
        outcome: dict = {"replans": 0, "replan_failures": []}
        plan, self.planned_start = None, None
        with stop_requests(interrupt=True) as received:  # SIGTERM as well as SIGINT ends the pause
            try:
                if not received:  # one that came since the chunk ended stops the pause before it begins
                    plan = self.queued(left, step) if queued else self.wait(left, previous, outcome)
            except KeyboardInterrupt:  # in the first look ahead, or in the kept plan's sleep
                pass
        if plan is None:
            return [], {
                **outcome,
                "at": iso(self.clock.now()),
                "paused_since": iso(now),
                "signal": stopped_by(received).name,
                "planned_start": None if self.planned_start is None else iso(self.planned_start),
            }
        self.say(
            f"{self.name}: {format_duration(left)} of work left in {len(plan)} chunk(s); "
            f"resuming after a {format_duration(self.clock.now() - now)} pause"
        )
        return plan, outcome

    def queued(self, left: float, step: int) -> list[Chunk]:
        """The queue's chunks still ahead, slept to, never re-planned: the queue gave the pauses between them to
        other entries' workers. The pause is marked for `queue run` (PauseMarker), which counts the worker free
        meanwhile and may hold the resumption while its workers are taken. A restart in a pause goes on with the
        chunks too. With none left (the run took longer than the queue expected), the rest runs now. Under SLURM
        (the slot `hands_back`) a pause longer than HAND_BACK_AFTER is not slept: the run stops, checkpointed, and
        the job of its next chunk resumes it."""
        now = self.clock.now()
        rest = chunks_from(self.decision.chunks, now)
        if not rest:
            self.say(f"{self.name}: the queue's chunks are over with work left; the rest runs now")
            return [Chunk(now, now + left, 0.0)]
        self.planned_start = rest[0].start
        if rest[0].start <= now:  # in a chunk already (a restart, or the job of this chunk): no pause
            return rest
        slot = queue_slot()
        marker = None if slot is None or slot.pause_file is None else PauseMarker(Path(slot.pause_file))
        if slot is not None and slot.hands_back and rest[0].start - now > HAND_BACK_AFTER:
            if marker is not None:
                marker.pause(rest[0].start)
            raise TrainingStopped(
                f"{self.name}: paused after step {step} until {iso(rest[0].start)}, the queue's next chunk; its "
                "worker is handed back, and the job of that chunk resumes the run from its checkpoint", step
            )
        self.say(f"{self.name}: pausing until {iso(rest[0].start)}, the queue's next chunk")
        if marker is None:  # the decision outlived the queue's environment (run by hand)
            self.clock.sleep(max(0.0, rest[0].start - now))
            return rest
        marker.pause(rest[0].start)
        marker.wait(self.clock.now, self.clock.sleep)  # the queue may hold it longer, while its workers are taken
        resumed = self.clock.now()
        return chunks_from(rest, resumed) or [Chunk(resumed, resumed + left, 0.0)]

    def wait(self, left: float, previous: list[Chunk], outcome: dict) -> Optional[list[Chunk]]:
        """wait-for-window's loop for the work left: its chunks, or None if a stop came first.

        A first fetch that fails (with fallback on) keeps what is left of the plan being followed, as wait-for-window
        does (with nothing left, the rest runs now); with fallback off it is an error, the checkpoint in place.
        """
        now, failed = self.clock.now(), []
        with on_source_failure(self.params.carbon, failed.append):
            submitted, deadline = self.decision.submitted, self.decision.deadline
            waited = wait_for_window(self.params, left, self.clock, self.say, self.pause, submitted, deadline)
            outcome.update(replans=waited.replans, replan_failures=waited.replan_failures)
            self.planned_start = waited.outlook.plan.start
            return list(waited.outlook.plan.chunks) if waited.started is not None else None
        rest = chunks_from(previous, now)
        kept = "kept the plan made before" if rest else "no plan left: the rest runs now"
        rest = rest or [Chunk(now, now + left, 0.0)]
        outcome["replan_failures"] = [f"{iso(now)}: {failed[0]}; {kept}"]
        self.say(f"re-plan failed: {failed[0]}; {kept}")
        self.planned_start = rest[0].start
        self.clock.sleep(max(0.0, rest[0].start - now))
        return rest
