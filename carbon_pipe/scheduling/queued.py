"""A slot the experiment queue planned: handed to wait-for-window in $CARBON_PIPE_QUEUE_SLOT, so an experiment the
queue started at its slot does not wait again and its decision records the queue's plan.

One writer (`QueueSlot.environment`, used by carbon_pipe/queue) and one reader (`queue_slot`, wait-for-window and the
re-planner between chunks), which validates the JSON against the dataclass itself.
An environment variable, not a params key: the slot is when this one run was started, not a setting of the project,
and DVC would otherwise record it as a parameter every experiment differs in.

An interruptible entry's run tells the queue when it pauses through its `PauseMarker`, so that the queue counts its
worker free only while it really pauses (not while earlier stages or a chunk's grace period run on). Under SLURM the
run hands its worker back instead (`hands_back`): it marks the pause, checkpoints and exits, and the job SLURM begins
at its next chunk resumes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

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
    pause_file: Optional[str] = None  # an interruptible entry's PauseMarker, an absolute path
    # Between chunks the run checkpoints and exits, for the job of its next chunk to resume (SLURM: a job sleeping
    # through the pause would keep its allocation); False: it sleeps through the pause (`queue run`).
    hands_back: bool = False

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
        raise UsageError(
            f"${SLOT_VARIABLE}: entry {slot.entry}: its chunks must be in order, not overlapping, and span its slot"
        )
    return slot


@dataclass(frozen=True)
class Pause:
    """What a pause marker says: when the run resumes as planned, and until when `queue run` holds it (None: not)."""

    resume_at: float
    held_until: Optional[float] = None

    @property
    def until(self) -> float:
        """When the run resumes: as planned, or later while held."""
        return max(self.resume_at, self.held_until or self.resume_at)


@dataclass(frozen=True)
class PauseMarker:
    """The file an interruptible entry's run holds while it pauses between the queue's chunks.

    `queue run` counts the entry's worker free only while the file is there. While all its workers are taken it holds
    the run (`hold`: a lease it renews every tick, so a `queue run` that stopped holds nothing for long) and lets it go
    (`release`) when one frees; the run resumes at the later of its planned time and the hold, removing the file as it
    does. Both sides take a lock beside the file, so a hold cannot land after the run has decided to resume. A marker
    that cannot be read counts as no pause: the entry's worker stays taken, the safe side."""

    path: Path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _read(self) -> Optional[Pause]:
        if not self.path.is_file():  # gone, or a folder or FIFO someone put there (reading a FIFO would block)
            return None
        try:
            raw = json.loads(self.path.read_text())
            pause = Pause(float(raw["resume_at"]), None if raw.get("held_until") is None else float(raw["held_until"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # cut short, unreadable: no pause
            return None
        return pause if math.isfinite(pause.until) else None

    def _write(self, pause: Pause) -> None:
        self.path.write_text(json.dumps(asdict(pause)))

    def read(self) -> Optional[Pause]:
        """The pause, or None while the run runs (or has ended, or never began)."""
        try:
            with self._locked():
                return self._read()
        except OSError:  # no folder, no lock to take
            return None

    def pause(self, resume_at: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._write(Pause(resume_at))

    def hold(self, until: float) -> bool:
        """Hold a paused run until at least `until` (a lease, renewed while it is needed): whether it was paused."""
        return self._change(lambda pause: Pause(pause.resume_at, max(until, pause.held_until or until)))

    def release(self) -> bool:
        """Let a held run resume at its planned time (now, if that passed): whether it was paused."""
        return self._change(lambda pause: Pause(pause.resume_at))

    def _change(self, change: Callable[[Pause], Pause]) -> bool:
        try:
            with self._locked():
                pause = self._read()
                if pause is not None:
                    self._write(change(pause))
                return pause is not None
        except OSError:
            return False

    def wait(self, now: Callable[[], float], sleep: Callable[[float], None]) -> None:
        """Sleep (`sleep`, at most a second at a time: a hold may come or go) until the pause's time, then remove
        the file. Removed too when the sleep is stopped (a signal): a stopped run no longer pauses."""
        try:
            while True:
                with self._locked():
                    pause = self._read()
                    if pause is None or now() >= pause.until:
                        self.path.unlink(missing_ok=True)
                        return
                sleep(max(0.0, min(pause.until - now(), 1.0)))
        finally:
            with self._locked():
                self.path.unlink(missing_ok=True)
