"""A slot the experiment queue planned: handed to wait-for-window in $CARBON_PIPE_QUEUE_SLOT, so an experiment the
queue started at its slot does not wait again and its decision records the queue's plan.

One writer (`QueueSlot.environment`, used by carbon_pipe/queue) and one reader (`queue_slot`, wait-for-window), which
validates the JSON against the dataclass itself.
An environment variable, not a params key: the slot is when this one run was started, not a setting of the project,
and DVC would otherwise record it as a parameter every experiment differs in.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

from pydantic import TypeAdapter, ValidationError

from ..artifacts import problem
from ..errors import UsageError
from ..intensity.series import IntensitySeries
from ..timeutil import iso
from .planner import Plan

SLOT_VARIABLE = "CARBON_PIPE_QUEUE_SLOT"


@dataclass(frozen=True)
class QueueSlot:
    """Where the queue put one entry: times are epoch seconds."""

    entry: str
    arrival: float  # when the entry was queued: the experiment's submission, so its saving is against starting then
    start: float  # its planned start
    end: float
    expected_g: float
    workers: int
    method: str  # how the plan was made (the joint planner's method)
    planned_at: float  # when that plan was made
    chunks: tuple[tuple[float, float], ...] = ()  # an interruptible entry's [start, end) pieces; empty: runs whole

    def environment(self) -> dict[str, str]:
        return {SLOT_VARIABLE: json.dumps(asdict(self), sort_keys=True)}

    @property
    def duration(self) -> float:
        """The run time the queue planned: its slot, or the sum of its chunks."""
        return sum(end - start for start, end in self.chunks) if self.chunks else self.end - self.start

    def plan(self, series: IntensitySeries, started: float) -> Plan:
        """What wait-for-window records, from when the experiment really started: a whole entry's slot for the
        planned length; an interruptible entry's chunks as the queue placed them (the first from that start), since
        the pauses between them are other entries' workers. Only what lies ahead is kept: with none, the planned
        length from that start."""
        from .planner import Chunk

        duration = self.duration
        spans = [(max(start, started), end) for start, end in self.chunks if end > started]
        spans = spans or [(started, started + duration)]
        chunks = tuple(Chunk(start, end, series.mean(start, end)) for start, end in spans)
        mean = sum(chunk.mean_intensity * chunk.duration for chunk in chunks) / sum(chunk.duration for chunk in chunks)
        pieces = f" in {len(self.chunks)} chunks" if self.chunks else ""
        why = (
            f"started by the carbon-pipe queue in its slot {iso(self.start)} to {iso(self.end)}{pieces} (entry "
            f"{self.entry}, {self.method} plan for {self.workers} worker(s) made at {iso(self.planned_at)}, "
            f"{self.expected_g:.3g} g expected); no wait of its own"
            + ("; it pauses between its chunks as planned, without re-planning" if self.chunks else "")
        )
        mode = "interruptible" if self.chunks else "flexible"
        return Plan("queue", chunks, mean, series.mean(self.arrival, self.arrival + duration), why, mode)


def queue_slot(environ: Optional[dict[str, str]] = None) -> Optional[QueueSlot]:
    """The slot this process was started in, or None when the queue did not start it."""
    text = (os.environ if environ is None else environ).get(SLOT_VARIABLE)
    if not text:
        return None
    try:
        json.loads(text)
    except ValueError as exc:
        raise UsageError(f"${SLOT_VARIABLE}: not a slot the queue wrote (not JSON: {exc})") from None
    try:
        slot = TypeAdapter(QueueSlot).validate_json(text, strict=True)
    except ValidationError as exc:
        raise UsageError(f"${SLOT_VARIABLE}: not a slot the queue wrote ({problem(exc)})") from None
    if not slot.arrival <= slot.start < slot.end:
        raise UsageError(f"${SLOT_VARIABLE}: entry {slot.entry}: its slot must start after arrival and end after start")
    bounds = [time for chunk in slot.chunks for time in chunk]
    if slot.chunks and not (bounds == sorted(bounds) and bounds[0] == slot.start and bounds[-1] == slot.end
                            and all(start < end for start, end in slot.chunks)):
        raise UsageError(f"${SLOT_VARIABLE}: entry {slot.entry}: its chunks must be in order, apart, and span its slot")
    return slot
