"""The train-baseline stage: the carbon-unaware reference, trained in one go from the job's submission time.

It reads the horizon wait-for-window left (the intensities it is charged, and when the job was submitted) and
nothing else of the scheduler's.
"""

from __future__ import annotations

from ..config.params import Params
from ..intensity.horizon import read_horizon
from ..training.loop import run_training
from ..training.placement import Placement
from ..training.run_summary import RunSummary

RUN = "baseline"


def run_stage(params: Params) -> RunSummary | None:
    """The run's summary on rank 0 (None on the other ranks of a torchrun job)."""
    return run_training(params, RUN, Placement.at_submission(read_horizon()))
