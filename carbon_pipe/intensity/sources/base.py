"""The one interface every carbon-intensity source implements, and the registry that finds them by name."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from ...config.carbon import CarbonParams, HttpSourceParams, configured_region
from ...errors import SourceError
from ...secrets import from_environment, redact
from ..series import IntensitySeries
from .http import FetchDeadline, JsonClient


class IntensitySource(ABC):
    """Returns gCO2/kWh for a zone as a contiguous, UTC, piecewise-constant series."""

    name: str

    def __init__(self, params: CarbonParams, **options: Any) -> None:
        self.params = params

    @property
    def region(self) -> str:
        """The zone this source reports on, as params name it."""
        return configured_region(self.params, self.name)

    @abstractmethod
    def series(self, start: float, end: float) -> IntensitySeries:
        """Intensities from the point holding `start` (epoch seconds) towards `end`: actuals for the past, forecasts
        ahead, as far as the source knows (callers check it reaches far enough). Raises SourceError."""

    def details(self) -> dict[str, Any]:
        """Facts about the present beyond the series (e.g. WattTime's percentile signal index); none by default."""
        return {}

    def close(self) -> None:
        """Release connections."""


class HttpSource(IntensitySource):
    """A source behind an HTTP API: its settings live in `carbon.<name>`."""

    def __init__(
        self,
        params: CarbonParams,
        sleep: Callable[[float], None] = time.sleep,
        until: Optional[FetchDeadline] = None,
        **options: Any,
    ) -> None:
        super().__init__(params)
        self.settings: HttpSourceParams = getattr(params, self.name)
        self.http = JsonClient(self.name, self.settings, self.headers(), sleep, until)

    def headers(self) -> dict[str, str]:
        return {}

    def credential(self, variable: str) -> Optional[str]:
        """$variable, stripped (None if unset); one that no HTTP header can carry is a SourceError naming it."""
        try:
            return from_environment(variable)
        except ValueError as exc:
            raise SourceError(f"{self.name}: {exc}") from None

    def close(self) -> None:
        self.http.close()

    def assemble(
        self,
        times: list[float],
        values: list[float],
        forecast: list[bool],
        step: float,
        start: float,
        end: float,
        notes: tuple[str, ...],
    ) -> IntensitySeries:
        """Samples -> the contiguous series around `start`; a payload without usable points is a SourceError.
        Notes may quote the payload (a region's name, an API warning), so they are redacted here."""
        if not times:
            raise SourceError(f"{self.name}: the response holds no intensity points ({self.region})")
        try:
            return IntensitySeries.from_samples(
                np.array(times), np.array(values), np.array(forecast), step, start, end, self.name, self.region,
                tuple(redact(note) for note in notes),
            )
        except ValueError as exc:
            raise SourceError(f"{self.name}: {exc}") from None


_REGISTRY: dict[str, Callable[..., IntensitySource]] = {}
SourceClass = TypeVar("SourceClass", bound=type[IntensitySource])


def register(name: str) -> Callable[[SourceClass], SourceClass]:
    def decorate(cls: SourceClass) -> SourceClass:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def get_source(params: CarbonParams, name: Optional[str] = None, **options: Any) -> IntensitySource:
    """The source called `name` (default: the first of `carbon.sources`). HTTP sources take `sleep` (how a retry
    waits: tests record the waits instead of spending them) and `until` (a FetchDeadline: a re-plan's cap); local
    sources ignore them."""
    return _REGISTRY[name or params.sources[0]](params, **options)
