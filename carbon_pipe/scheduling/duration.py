"""How long the job is expected to run, and where that figure came from (training/duration.py makes it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DurationEstimate:
    seconds: float
    source: str  # params | estimated | fallback
    basis: str  # how, in words
