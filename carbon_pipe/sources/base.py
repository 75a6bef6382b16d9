"""The one interface every carbon-intensity source implements, and the registry that finds them by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, TypeVar

from ..params import CarbonParams
from ..series import IntensitySeries


class IntensitySource(ABC):
    """Returns gCO2/kWh for a zone as a contiguous, UTC, piecewise-constant series."""

    name: str

    @abstractmethod
    def series(self, start: float, end: float) -> IntensitySeries:
        """Intensities covering at least [start, end) (epoch seconds): actuals for the past, forecasts ahead."""


_REGISTRY: dict[str, Callable[[CarbonParams], IntensitySource]] = {}
SourceClass = TypeVar("SourceClass", bound=type[IntensitySource])


def register(name: str) -> Callable[[SourceClass], SourceClass]:
    def decorate(cls: SourceClass) -> SourceClass:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def source_names() -> list[str]:
    return sorted(_REGISTRY)


def get_source(params: CarbonParams) -> IntensitySource:
    return _REGISTRY[params.source](params)
