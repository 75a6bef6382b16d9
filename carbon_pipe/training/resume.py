"""What resuming needs: the resume folder, the fingerprint that says whose it is, the run's state and the RNGs'.

A stopped or killed run leaves stages/train-<run>/resume/ behind: `checkpoint.pt` (the latest step checkpoint,
written atomically), `checkpoint.previous.pt` (the one before it) and one energy journal per node. A checkpoint
that cannot be read (a disk fault, a copy cut short) is set aside beside the folder, for a look, and the run
resumes from the one before it, or from scratch, saying so. The folder is not a DVC out, so `dvc repro` does not delete
it before rerunning the stage; its `fingerprint` names the configuration it belongs to, so a run with other
params, data or placement on the clock starts afresh instead of resuming someone else's state. A run that
finishes deletes the folder, so a finished run never resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

import numpy as np
from pydantic import TypeAdapter, ValidationError

from ..artifacts import md5sum, problem, save_torch, write_bytes
from ..config.params import Params
from ..errors import notice
from ..layout import DATASET_FILE, resume_dir
from . import distributed
from .run_summary import SegmentEntry
from .segments import Checkpointed

if TYPE_CHECKING:
    import torch

    from .trainer import Trainer


class ResumeFolder:
    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.checkpoint = folder / "checkpoint.pt"
        self.previous = folder / "checkpoint.previous.pt"  # a fallback should the latest prove unreadable
        # Outside the folder, which a finished run deletes: kept for a look (the last one only), git-ignored.
        self.set_aside = folder.with_name(f"{folder.name}-checkpoint.pt.set-aside")

    def journal(self, node: int) -> Path:
        return self.folder / f"energy-node{node}.csv"

    def claim(self) -> bool:
        """Keep the folder if it belongs to this configuration, else start it afresh; True if stale state was
        discarded. Rank 0 only: an unreadable latest checkpoint is set aside here, with one line on stderr."""
        marker = self.folder / "fingerprint"
        if marker.is_file() and marker.read_text(encoding="utf-8").strip() == self.fingerprint:
            self._set_aside_unreadable()
            return False
        stale = self.folder.exists()
        shutil.rmtree(self.folder, ignore_errors=True)
        write_bytes(marker, f"{self.fingerprint}\n".encode())  # a hash, not prose: never redacted
        return stale

    def owned(self) -> bool:
        """Whether the folder still carries this configuration's fingerprint (nothing else removed or replaced it)."""
        marker = self.folder / "fingerprint"
        try:
            return marker.read_text(encoding="utf-8").strip() == self.fingerprint
        except (OSError, UnicodeDecodeError):
            return False

    def _set_aside_unreadable(self) -> None:
        _, problem = _read(self.checkpoint)
        if problem is None:
            return
        self.checkpoint.replace(self.set_aside)
        earlier = self.load()
        then = f"resuming from the checkpoint before it (step {earlier['step']})" if earlier else "starting afresh"
        notice(f"{self.checkpoint} is unreadable ({problem}): set aside as {self.set_aside}; {then}")

    def load(self) -> dict | None:
        """The latest readable checkpoint of this configuration, if any (every rank reads it)."""
        for path in (self.checkpoint, self.previous):
            state, _ = _read(path)
            if state is not None:
                return state if state["fingerprint"] == self.fingerprint else None
        return None

    def save(self, state: dict) -> None:
        """The latest is kept as the previous (a second name for the same file, so no copy), then the new one is
        written over the latest (atomically: a failed write leaves the latest as it was)."""
        if self.checkpoint.is_file():
            self.previous.unlink(missing_ok=True)
            try:
                os.link(self.checkpoint, self.previous)
            except OSError:  # a filesystem without hard links: a copy
                write_bytes(self.previous, self.checkpoint.read_bytes())
        save_torch(self.checkpoint, state)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def done(self) -> Optional[Checkpointed]:
        """What the checkpoint here says the run has done (None: no checkpoint of this configuration)."""
        saved = self.load()
        if saved is None:
            return None
        chunk = max((entry.chunk or 0 for entry in logged_segments(saved)), default=0)
        return Checkpointed(saved["step"], saved["seconds"], chunk)


SEGMENT_LOG = TypeAdapter(list[SegmentEntry])


def logged_segments(saved: dict) -> list[SegmentEntry]:
    """The segment log of a checkpoint (which holds it as plain dicts, for torch.load(weights_only=True))."""
    return SEGMENT_LOG.validate_python(saved["segment_log"])


# What resuming reads of a checkpoint (RunState.resumed, Trainer.load_state_dict).
CHECKPOINT_KEYS = (
    "fingerprint", "step", "epochs", "seconds", "epoch_seconds", "epoch_start", "clock", "epoch_loss",
    "data_order_rng", "rng", "model", "optimizer", "scaler", "lr_schedule", "segment_log",
)


def _read(path: Path) -> tuple[Optional[dict], Optional[str]]:
    """The checkpoint at `path`, or None and why it cannot be resumed (no reason: there is none)."""
    import torch

    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        return None, None
    except Exception as exc:  # a truncated zip, pickled garbage, an I/O error: torch raises many kinds
        return None, f"{exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0].split('. ')[0][:200]}"
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        return None, f"no {', '.join(missing)} in it"
    try:
        logged_segments(state)
    except ValidationError as exc:
        return None, f"segment_log.{problem(exc)}"
    return state, None


def fingerprint(**parts) -> str:
    """A stable digest of everything that determines the training state (JSON-able values)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def capture_rng() -> dict:
    """Every random-number state that training can touch, in types torch.load(weights_only=True) accepts."""
    import torch

    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
         numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Placed(Protocol):
    """Where a run sits on the pipeline clock (placement.py's Placement, which journals into the resume folder):
    what its checkpoints must share to be resumed."""

    @property
    def fingerprint_clock(self) -> str: ...


def resume_folder(params: Params, run_name: str, placement: Placed, world_size: int) -> ResumeFolder:
    """The run's resume folder, with the fingerprint of everything that decides its training state."""
    return ResumeFolder(
        resume_dir(run_name),
        fingerprint(
            params={
                "seed": params.seed,
                "model": params.model.model_dump(by_alias=True),
                "train": params.train.model_dump(exclude={"checkpoint_every"}),
                # auto: how the choice is made; the choice is kept in the folder
                "run": params.deciding_fields(run_name),
            },
            dataset_md5=md5sum(DATASET_FILE),
            world_size=world_size,
            clock=placement.fingerprint_clock,
        ),
    )


@dataclass
class RunState:
    """How far a run is, beside the trainer's weights and the RNGs: what a checkpoint holds and a resume restores."""

    epoch_loss: torch.Tensor  # this rank's summed training loss so far this epoch (a device tensor)
    total_steps: int
    step: int = 0  # optimizer steps made
    epochs: list[dict] = field(default_factory=list)  # one record per finished epoch
    epoch_seconds: float = 0.0  # training time of this epoch so far
    epoch_start: Optional[str] = None  # on the pipeline clock
    seconds_before: float = 0.0  # training time of the earlier segments
    clock: Optional[float] = None  # where the last checkpoint sat on the pipeline clock
    segment_log: list[SegmentEntry] = field(default_factory=list)  # the earlier segments: where they sat, which steps
    order_state: Optional[torch.Tensor] = None  # the data order's generator before this epoch's permutation

    @classmethod
    def resumed(
        cls, saved: Optional[dict], total_steps: int, trainer: Trainer, order_rng: torch.Generator,
        job: distributed.Job,
    ) -> RunState:
        """A fresh run's state, or the state `saved`, restored into the trainer and every RNG."""
        import torch

        state = cls(torch.zeros((), dtype=torch.float64, device=job.device), total_steps)
        if saved is None:
            return state
        trainer.load_state_dict(saved)
        restore_rng(saved["rng"][job.rank])
        order_rng.set_state(saved["data_order_rng"])
        state.step, state.epochs, state.seconds_before = saved["step"], saved["epochs"], saved["seconds"]
        state.epoch_seconds, state.epoch_start, state.clock = (
            saved["epoch_seconds"],
            saved["epoch_start"],
            saved["clock"],
        )
        state.segment_log = logged_segments(saved)
        state.epoch_loss += saved["epoch_loss"] if job.is_main else 0.0  # saved as the sum over ranks
        return state

    def snapshot(
        self, fingerprint: str, trainer: Trainer, job: distributed.Job, now: float, wall_origin: float,
        entry: SegmentEntry,
    ) -> dict:
        """The full training state; every rank calls it (it gathers), rank 0 saves it. `now` is where the segment
        is on the pipeline clock, `wall_origin` when it began on the wall clock, and `entry` its line of the segment
        log, ending now. Plain dicts throughout, for torch.load(weights_only=True)."""
        return {
            "fingerprint": fingerprint,
            "step": self.step,
            "total_steps": self.total_steps,
            "epochs": self.epochs,
            "epoch_loss": job.sum_(self.epoch_loss.clone()).item(),
            "epoch_seconds": self.epoch_seconds,
            "epoch_start": self.epoch_start,
            "data_order_rng": self.order_state,
            **trainer.state_dict(),
            "rng": job.gather(capture_rng()),
            "seconds": self.seconds_before + (time.time() - wall_origin),
            "clock": now,
            "segment_log": [logged.to_json() for logged in [*self.segment_log, entry]],
        }
