"""What a command reports about its training, in the JSON file $CARBON_PIPE_METRICS names: the contract.

Every key is optional; a key the command does not write is null in metrics/<run>.json and listed in
`command.not_reported`, never filled in. A key outside the contract (a typo would otherwise be a silent null), a value
of the wrong type, NaN or infinity (under `extra` too), a key given twice, or a file that is not a JSON object is one
line naming the key, and exit code 2; so is a file over MAX_BYTES, or one that is not a regular file (a FIFO would
block the read, a symlink could point anywhere). Free-form figures go under `extra`, copied into the summary as is.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from ..errors import UsageError

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
NonNegative = Annotated[Finite, Field(ge=0)]
Percent = Annotated[Finite, Field(ge=0, le=100)]
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]

MAX_BYTES = 4 * 2**20  # a figures file; a larger one is data by mistake, and parsing it would cost gigabytes
MAX_EPOCHS = 10_000  # rows of epochs.csv; each is a validated object, so a million would take minutes and a GB
MAX_DEPTH = 32  # nesting under `extra`: deeper would not survive being copied and written
EPOCH_COLUMNS = ["epoch", "train_loss", "test_loss", "test_accuracy"]  # what compare's epoch charts read


class Epoch(BaseModel):
    """One epoch: its number, losses and test accuracy; other keys (seconds, samples/s) are kept as given."""

    model_config = ConfigDict(extra="allow")

    epoch: Positive
    train_loss: Optional[Finite] = None
    test_loss: Optional[Finite] = None
    test_accuracy: Optional[Percent] = None


class Reported(BaseModel):
    """The contract. Accuracies are percentages (0-100) on the test set; final_loss is the last epoch's mean
    training loss, as `train` reports it."""

    model_config = ConfigDict(extra="forbid")

    final_accuracy: Optional[Percent] = None
    final_loss: Optional[Finite] = None
    test_loss: Optional[Finite] = None
    train_samples: Optional[Count] = None  # samples in one epoch of training
    samples_per_second: Optional[NonNegative] = None
    epochs: Optional[Annotated[list[Epoch], Field(max_length=MAX_EPOCHS)]] = None
    peak_memory_mb: Optional[NonNegative] = None  # e.g. torch.cuda.max_memory_allocated; else carbon-pipe's RSS
    batch_size: Optional[Positive] = None
    gradient_accumulation_steps: Optional[Positive] = None
    effective_batch_size: Optional[Positive] = None
    world_size: Optional[Positive] = None
    precision: Optional[StrictStr] = None
    device: Optional[StrictStr] = None
    dataset: Optional[StrictStr] = None
    model_class: Optional[StrictStr] = None
    compile: Optional[StrictBool] = None
    channels_last: Optional[StrictBool] = None
    extra: dict[str, Any] = {}

    def not_reported(self) -> list[str]:
        """The contract's keys the command left out (null in the summary)."""
        return [name for name in type(self).model_fields if name != "extra" and getattr(self, name) is None]

    def epoch_rows(self) -> list[dict]:
        return [epoch.model_dump() for epoch in self.epochs or []]


def _where(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "not a key of the contract (free-form figures go under extra)"
    return error["msg"]


def read_reported(path: Path) -> tuple[Reported, bool]:
    """What the command wrote to `path`, and whether it wrote anything; a file that breaks the contract is one line
    per problem naming the key."""
    text = _read_capped(path)
    if text is None:
        return Reported(), False
    where = f"$CARBON_PIPE_METRICS ({path})"
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise UsageError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # a duplicate key, or an integer of more digits than Python converts
        raise UsageError(f"{where}: not valid JSON ({str(exc).split(':')[0][:120]})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    problem = _unwritable(raw.get("extra"), "extra")
    if problem is not None:
        raise UsageError(f"{where}: {problem}")
    try:
        return Reported.model_validate(raw), True
    except ValidationError as exc:
        lines = [f"{where}: {_where(error['loc'])}: {_message(error)}" for error in exc.errors()]
        raise UsageError("\n".join(lines)) from None


def _read_capped(path: Path) -> Optional[str]:
    """The file's text (None: there is none), read only if it is a regular file in its own right (never through a
    symlink, never a FIFO, which would block, or a device) of at most MAX_BYTES."""
    where = f"$CARBON_PIPE_METRICS ({path})"
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a symlink (write the file itself)" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise UsageError(f"{where}: cannot read it: {why}") from None
    status = os.fstat(handle)
    if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_BYTES:
        os.close(handle)
        if not stat.S_ISREG(status.st_mode):
            raise UsageError(f"{where}: not a regular file (a FIFO, device or folder): write a JSON file there")
        raise UsageError(f"{where}: {status.st_size:,} bytes, more than {MAX_BYTES:,}: it holds figures, not data")
    with os.fdopen(handle, "rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:  # it grew while being read
        raise UsageError(f"{where}: more than {MAX_BYTES:,} bytes: it holds figures, not data")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: cannot read it (not UTF-8 text)") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, refusing a key given twice (json keeps the last silently: a figure would be lost unseen)."""
    found: dict = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} is given twice in one object")
        found[key] = value
    return found


def _unwritable(value: Any, key: str, depth: int = 0) -> Optional[str]:
    """Why `extra` cannot be copied into the summary as it is, if it cannot: a NaN or an infinity (JSON holds none),
    or nesting deeper than MAX_DEPTH, naming the key."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key}: {value} is not a finite number (JSON holds no NaN or Infinity)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    if items and depth >= MAX_DEPTH:
        return f"{key.split('.')[0]}: nested more than {MAX_DEPTH} levels deep"
    for name, inner in items:
        problem = _unwritable(inner, f"{key}.{name}", depth + 1)
        if problem is not None:
            return problem
    return None
