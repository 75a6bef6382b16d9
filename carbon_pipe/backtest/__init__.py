"""Backtests: what scheduling policies would have saved on a historical trace, scored against hindsight.

The maths is pure (arrays in, scores out); files.py alone reads traces and jobs files and writes results."""

from .jobs import JobTable
from .policies import POLICIES
from .runner import Report, Setup, default_policies, run
from .tables import PER_JOB_COLUMNS, as_table, per_job_rows

__all__ = [
    "JobTable",
    "PER_JOB_COLUMNS",
    "POLICIES",
    "Report",
    "Setup",
    "as_table",
    "default_policies",
    "per_job_rows",
    "run",
]
