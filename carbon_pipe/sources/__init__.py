"""Carbon-intensity sources, one module each, looked up by name (`carbon.source` in params.yaml)."""

from .base import IntensitySource, get_source, source_names

# Importing a module registers its source.
from . import mock  # noqa: E402,F401

__all__ = ["IntensitySource", "get_source", "source_names"]
