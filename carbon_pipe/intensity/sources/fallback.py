"""The fallback chain: try `carbon.sources` in order; record why each one that failed did. Never silent."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from ...config.carbon import CarbonParams, configured_region
from ...errors import CarbonPipeError, SourceError, UsageError
from ...secrets import redact_data
from ...timeutil import iso
from ..series import IntensitySeries
from .base import get_source


@dataclass(frozen=True)
class SourceFailure:
    source: str
    region: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Fetched:
    """A series, which chain served it, and the sources that failed before it."""

    series: IntensitySeries
    chain: tuple[str, ...]
    failures: tuple[SourceFailure, ...]
    details: dict[str, Any] = field(default_factory=dict)  # the serving source's `details()`, when asked for

    def record(self) -> dict[str, Any]:
        """What decision.json, horizon.json and the summaries keep about where the intensities came from."""
        return {"source_chain": list(self.chain), "source_failures": [failure.to_dict() for failure in self.failures]}


@contextmanager
def on_source_failure(carbon: CarbonParams, record: Callable[[str], None]) -> Iterator[None]:
    """The one rule for a source that fails (SourceError, UsageError): with `carbon.fallback` on, its error line goes
    to `record` and the block ends there, so the caller falls back; with fallback off it is raised."""
    try:
        yield
    except (SourceError, UsageError) as exc:
        if not carbon.fallback:
            raise
        record(str(exc))


def fetch_from(
    carbon: CarbonParams,
    name: str,
    start: float,
    end: float,
    need_until: float,
    with_details: bool = False,
    **options: Any,
) -> tuple[IntensitySeries, dict[str, Any]]:
    """One source's series from `start` towards `end` (and its details, if asked; they quote the payload, so
    they are redacted); a series ending before `need_until` is a failure. So is any error a source did not foresee
    (a parser's blind spot): it costs that source, never the run."""
    try:
        source = get_source(carbon, name, **options)
        try:
            series = source.series(start, end)
            if series.end < need_until:
                raise SourceError(
                    f"{name}: its data end at {iso(series.end)}, the plan needs them to {iso(need_until)}"
                )
            return series, redact_data(source.details()) if with_details else {}
        finally:
            source.close()
    except CarbonPipeError:
        raise
    except Exception as exc:  # not BaseException: Ctrl-C and SIGTERM still stop the wait
        said = (str(exc).splitlines() or [""])[0][:200]
        raise SourceError(f"{name}: the answer could not be used ({exc.__class__.__name__}: {said})") from None


def fetch_series(
    carbon: CarbonParams, start: float, end: float, need_until: float, with_details: bool = False, **options: Any
) -> Fetched:
    """The first source of the chain that delivers. With `carbon.fallback: false` the first failure is raised."""
    failures: list[SourceFailure] = []
    for name in carbon.sources:
        where = (name, configured_region(carbon, name))
        with on_source_failure(carbon, lambda error: failures.append(SourceFailure(*where, error))):
            series, details = fetch_from(carbon, name, start, end, need_until, with_details, **options)
            return Fetched(series, tuple(carbon.sources), tuple(failures), details)
    raise SourceError("every source failed: " + "; ".join(failure.error for failure in failures))
