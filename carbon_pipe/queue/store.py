"""The queue file: every entry and what became of it, one JSON document rewritten atomically at each change.

It lives in .dvc/tmp/carbon-pipe-queue/ (as DVC's own queue keeps its state in .dvc/tmp): it is this machine's
operational state (pids, SLURM job ids, what is running), rewritten every few seconds while `queue run` works, and
not versioned: a versioned file would be copied into every experiment's workspace and make each one's commit
differ by the queue's progress. The experiments themselves, and their results, are what DVC versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..artifacts import read_json, write_json
from ..errors import ArtifactError, UsageError
from ..scheduling.queued import Pause, PauseMarker

QUEUE_DIR = Path(".dvc/tmp/carbon-pipe-queue")
QUEUE_FILE = QUEUE_DIR / "queue.json"
DVC_REPO_LOCK = Path(".dvc/tmp/lock")


@contextlib.contextmanager
def dvc_workspace_settled() -> Iterator[None]:
    """Hold DVC's repository lock shared while params.yaml is read: `dvc exp run --temp -S` rewrites params.yaml in
    the workspace (applies the overrides, stashes them, restores it) under that lock, so an experiment the queue
    just launched could otherwise be read half-written. DVC takes it with a non-blocking flock and retries for
    seconds; this holds it for a read."""
    if not DVC_REPO_LOCK.parent.is_dir():
        yield
        return
    with open(DVC_REPO_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
State = Literal["queued", "started", "done", "failed", "cancelled"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Slot(Record):
    """Where the last plan put an entry (epoch seconds)."""

    start: float
    end: float
    expected_g: float
    planned_at: float
    method: str
    chunks: list[tuple[float, float]] = []  # an interruptible entry's: [start, end) of each; empty: it runs whole


class Entry(Record):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    overrides: dict[str, str]
    arrival: float
    deadline: float
    duration: float = Field(gt=0)
    duration_basis: str
    power_kw: float = Field(gt=0)
    power_basis: str
    chunk_floor: Optional[float] = Field(None, ge=0)  # interruptible: its shortest chunk in seconds; None: runs whole
    state: State = "queued"
    slot: Optional[Slot] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    exit_code: Optional[int] = None
    note: Optional[str] = None  # why it failed, or how SLURM moved it
    slurm_jobs: list[int] = []  # its SLURM jobs: one, or an interruptible entry's one per chunk, in chunk order

    @property
    def folder(self) -> Path:
        """Its launch markers and log (local runs), or its clone and batch script (SLURM)."""
        return QUEUE_DIR / "entries" / self.name

    @property
    def pause_file(self) -> Path:
        """Where an interruptible entry's run marks its pauses (scheduling/queued.py's PauseMarker)."""
        return (self.folder / "paused").resolve()

    def pause(self) -> Optional[Pause]:
        """A started interruptible entry's pause between its chunks, as its run marks it; None while it runs, and for
        any other entry."""
        if self.state != "started" or self.slot is None or not self.slot.chunks:
            return None
        return PauseMarker(self.pause_file).read()


class Queue(Record):
    version: Literal[2] = 2  # 2: an entry's SLURM jobs are a list (slurm_jobs), one per chunk
    entries: list[Entry] = []

    def named(self, name: str) -> Entry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise UsageError(f"entry {name}: not in the queue ({QUEUE_FILE})")

    def in_state(self, *states: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.state in states]


def _checked(raw: object) -> Queue:
    """The file as the queue wrote it, or one line naming the first entry (and field) that is not."""
    if isinstance(raw, dict) and raw.get("version") == 1:
        raise UsageError(f"{QUEUE_FILE}: written by an earlier carbon-pipe (queue file version 1, this one reads 2): "
                         "let that version finish or cancel its entries, then remove the file; nothing was run")
    try:
        return Queue.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = list(error["loc"])
        what = "the file"
        if where[:1] == ["entries"] and len(where) > 1 and isinstance(where[1], int):
            index = where[1]
            entries = raw.get("entries") if isinstance(raw, dict) else None
            found = entries[index] if isinstance(entries, list) and index < len(entries) else None
            name = found.get("name") if isinstance(found, dict) else None
            what, where = f"entry {index + 1}" + (f" ({name})" if isinstance(name, str) else ""), where[2:]
        field = ".".join(map(str, where)) or "itself"
        raise UsageError(f"{QUEUE_FILE}: {what}: {field}: {error['msg']}; edited by hand? nothing was run") from None


def _check_entries(queue: Queue) -> Queue:
    names = [entry.name for entry in queue.entries]
    for entry in queue.entries:
        if names.count(entry.name) > 1:
            raise UsageError(f"{QUEUE_FILE}: entry {entry.name}: named twice; nothing was run")
        if entry.deadline < entry.arrival + entry.duration:
            raise UsageError(
                f"{QUEUE_FILE}: entry {entry.name}: its deadline leaves less than its duration after its arrival; "
                "nothing was run"
            )
    return queue


def read_queue() -> Queue:
    if not QUEUE_FILE.exists():
        return Queue()
    try:
        return _check_entries(_checked(read_json(QUEUE_FILE)))
    except ArtifactError as exc:
        raise UsageError(f"{exc}; edited by hand? nothing was run") from None


@contextlib.contextmanager
def changing() -> Iterator[Queue]:
    """Read, change and write the queue under a lock (`add` may run while `run` works): the change is written
    whole when the block ends without error, and not at all otherwise."""
    QUEUE_DIR.mkdir(parents=True, exist_ok=True)
    with open(QUEUE_DIR / "queue.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        queue = read_queue()
        yield queue
        write_json(QUEUE_FILE, queue.model_dump())


def update(name: str, **fields: object) -> Entry:
    """One entry's fields changed and written at once (a transition in the journal)."""
    with changing() as queue:
        entry = queue.named(name)
        for key, value in fields.items():
            setattr(entry, key, value)
        return entry.model_copy()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
