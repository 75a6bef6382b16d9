"""The train stages (train-baseline, train-optimized): train one configuration with energy tracking.

The optimized run follows its plan's chunks (pausing between them); the baseline trains in one go.
"""

from __future__ import annotations

from typing import Callable

from ..params import Params
from ..training.segments import train_run


def run_stage(params: Params, run_name: str, say: Callable[[str], None]) -> dict | None:
    """The run's summary on rank 0 (None on the other ranks of a torchrun job)."""
    return train_run(params, run_name, report=say)
