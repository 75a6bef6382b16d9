"""A command run so far, as carbon-pipe saw it (progress.json in the resume folder): its run time, where each
segment sat on the clock, how each launch ended and the largest memory sampled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pydantic import TypeAdapter, ValidationError

from ..artifacts import FROM_FILE, problem, read_json, write_json
from ..errors import ArtifactError
from ..training.run_summary import Launch, SegmentEntry
from ..training.segments import Checkpointed

PROGRESS = "progress.json"  # in the resume folder: what the segments that ended did


@dataclass
class Progress:
    """The run so far, as carbon-pipe saw it: updated after every segment that ended."""

    fingerprint: str = ""  # the run it belongs to (the resume folder's)
    seconds: float = 0.0  # the command's run time over those segments
    clock: Optional[float] = None  # where the last one ended on the pipeline clock
    segment_log: list[SegmentEntry] = field(default_factory=list)  # where each sat, which "steps" (seconds) it ran
    endings: list[Launch] = field(default_factory=list)  # how each launch ended
    peak_rss_mb: Optional[float] = None  # the largest resident memory of the command's process tree, summed

    @property
    def step(self) -> int:
        return int(self.seconds)

    def done(self) -> Optional[Checkpointed]:
        """What the chunk follower counts: whole seconds of run time, and the last planned chunk run."""
        if not self.segment_log:
            return None
        return Checkpointed(self.step, self.seconds, max(entry.chunk or 0 for entry in self.segment_log))

    @classmethod
    def read(cls, folder: Path, fingerprint: str) -> Progress:
        """This run's progress; a fresh one if there is none, or only another run's."""
        path = folder / PROGRESS
        if not path.is_file():
            return cls(fingerprint)
        try:
            progress = TypeAdapter(cls).validate_python(read_json(path), context=FROM_FILE)
        except ValidationError as exc:
            what = f"not a run's progress carbon-pipe wrote ({problem(exc)})"
            raise ArtifactError(f"{path}: {what}: delete {folder} to start the run over") from None
        return progress if progress.fingerprint == fingerprint else cls(fingerprint)

    def save(self, folder: Path) -> None:
        write_json(folder / PROGRESS, TypeAdapter(Progress).dump_python(self, mode="json", by_alias=True))
