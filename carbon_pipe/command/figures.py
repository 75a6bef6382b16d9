"""What a command reports about its training, in the JSON file $CARBON_PIPE_METRICS names: the contract.

Every key is optional; a key the command does not write is null in metrics/<run>.json and listed in
`command.not_reported`, never filled in. A key outside the contract (a typo would otherwise be a silent null), a value
of the wrong type, NaN or infinity, or a file that is not a JSON object is one line naming the key, and exit code 2.
Free-form figures go under `extra`, which is copied into the summary as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from ..errors import UsageError

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
NonNegative = Annotated[Finite, Field(ge=0)]
Percent = Annotated[Finite, Field(ge=0, le=100)]
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]

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
    epochs: Optional[list[Epoch]] = None
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Reported(), False
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"$CARBON_PIPE_METRICS ({path}): cannot read it ({exc.__class__.__name__})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"$CARBON_PIPE_METRICS ({path}): not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"$CARBON_PIPE_METRICS ({path}): expected a JSON object, got {type(raw).__name__}")
    try:
        return Reported.model_validate(raw), True
    except ValidationError as exc:
        lines = [f"$CARBON_PIPE_METRICS ({path}): {_where(error['loc'])}: {_message(error)}" for error in exc.errors()]
        raise UsageError("\n".join(lines)) from None
