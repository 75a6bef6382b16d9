"""Carbon-intensity sources, one module each, looked up by name (`carbon.sources` in params.yaml)."""

# Importing a module registers its source.
from . import csv_trace, electricitymaps, mock, uk, watttime  # noqa: F401
from .base import IntensitySource, get_source
from .fallback import Fetched, SourceFailure, fetch_from, fetch_series, on_source_failure
from .http import FetchDeadline

__all__ = [
    "IntensitySource",
    "get_source",
    "Fetched",
    "SourceFailure",
    "fetch_from",
    "fetch_series",
    "on_source_failure",
    "FetchDeadline",
]
