"""What resuming needs: the resume folder, the fingerprint that says whose it is, and the RNG states.

A stopped or killed run leaves stages/train-<run>/resume/ behind: `checkpoint.pt` (the latest step checkpoint,
written atomically) and one energy journal per node. The folder is not a DVC out, so `dvc repro` does not delete
it before rerunning the stage; its `fingerprint` names the configuration it belongs to, so a run with other
params, data or placement on the clock starts afresh instead of resuming someone else's state. A run that
finishes deletes the folder, so a finished run never resumes.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..artifacts import save_torch, write_bytes


class ResumeFolder:
    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.checkpoint = folder / "checkpoint.pt"

    def journal(self, node: int) -> Path:
        return self.folder / f"energy-node{node}.csv"

    def claim(self) -> bool:
        """Keep the folder if it belongs to this configuration, else start it afresh; True if stale state was discarded."""
        marker = self.folder / "fingerprint"
        if marker.is_file() and marker.read_text(encoding="utf-8").strip() == self.fingerprint:
            return False
        stale = self.folder.exists()
        shutil.rmtree(self.folder, ignore_errors=True)
        write_bytes(marker, f"{self.fingerprint}\n".encode())  # a hash, not prose: never redacted
        return stale

    def load(self) -> dict | None:
        if not self.checkpoint.is_file():
            return None
        state = torch.load(self.checkpoint, weights_only=True)
        return state if state.get("fingerprint") == self.fingerprint else None

    def save(self, state: dict) -> None:
        save_torch(self.checkpoint, state)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def fingerprint(**parts) -> str:
    """A stable digest of everything that determines the training state (JSON-able values)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def capture_rng() -> dict:
    """Every random-number state that training can touch, in types torch.load(weights_only=True) accepts."""
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
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
         numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
