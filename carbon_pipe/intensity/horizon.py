"""The horizon wait-for-window leaves for the train and compare stages: when the job was submitted, on which clock,
where the intensities came from, and the series itself (horizon.json + intensity.csv). One writer, one reader.
"""

from __future__ import annotations

from typing import Literal, Optional

import pandas as pd
from pydantic import Field, PrivateAttr

from ..artifacts import ArtifactModel, Instant, read_model, reason, write_csv, write_model
from ..errors import ArtifactError
from ..layout import HORIZON_JSON, INTENSITY_CSV
from .series import IntensitySeries

AGAIN = "run wait-for-window again"


class FailedSource(ArtifactModel):
    """A source that failed before one served (carbon.fallback), and why."""

    source: str = Field(description="the source")
    region: str = Field(description="the region (zone) asked for")
    error: str = Field(description="what went wrong, in one line")


class Horizon(ArtifactModel):
    """horizon.json: the intensities a run is charged with (their series is intensity.csv beside it), and the
    submission time the baseline starts at. Inside a decision a wait stopped in its first fetch has no source yet."""

    source: Optional[str] = Field(description="the intensity source that served the series (null: none yet)")
    region: Optional[str] = Field(description="the grid region (zone) of the series")
    clock: Literal["simulated", "real"] = Field(description="simulated: waits are computed, not slept")
    submitted: Instant = Field(alias="now", description="when the job was submitted (UTC)")
    series_notes: list[str] = Field(description="what the source said of its series (gaps filled, forecast ends)")
    source_chain: list[str] = Field(description="the sources tried, in order (carbon.source, then the fallbacks)")
    source_failures: list[FailedSource] = Field(description="each source that failed before one served")
    _series: Optional[IntensitySeries] = PrivateAttr(None)

    @classmethod
    def of(
        cls,
        submitted: float,
        clock: str,
        series: IntensitySeries,
        chain: tuple[str, ...],
        failures: tuple[FailedSource, ...],
    ) -> Horizon:
        horizon = cls(
            source=series.source,
            region=series.region,
            clock=clock,
            submitted=submitted,
            series_notes=list(series.notes),
            source_chain=list(chain),
            source_failures=list(failures),
        )
        horizon._series = series
        return horizon

    @property
    def series(self) -> IntensitySeries:
        """The intensities (intensity.csv); only a horizon read with read_horizon or made with `of` has them."""
        if self._series is None:
            raise ArtifactError(f"{INTENSITY_CSV} was not read: this horizon is the one recorded in a decision")
        return self._series

    @property
    def simulated(self) -> bool:
        return self.clock == "simulated"


def write_horizon(horizon: Horizon) -> None:
    write_csv(INTENSITY_CSV, horizon.series.to_frame())
    write_model(HORIZON_JSON, horizon)


def remove_horizon() -> None:
    """No horizon (a wait stopped before any plan): an earlier decision's must not outlive it."""
    HORIZON_JSON.unlink(missing_ok=True)
    INTENSITY_CSV.unlink(missing_ok=True)


def read_horizon() -> Horizon:
    """The horizon as wait-for-window wrote it, with its series; a missing or malformed file is one line naming it."""
    horizon = read_model(HORIZON_JSON, Horizon, "a horizon wait-for-window wrote", AGAIN)
    if horizon.source is None or horizon.region is None:
        raise ArtifactError(f"{HORIZON_JSON}: not a horizon wait-for-window wrote (source is null): {AGAIN}")
    horizon._series = _read_series(horizon.source, horizon.region, tuple(horizon.series_notes))
    return horizon


def _read_series(source: str, region: str, notes: tuple[str, ...]) -> IntensitySeries:
    try:
        frame = pd.read_csv(INTENSITY_CSV)
        return IntensitySeries.from_frame(frame, source, region, notes)
    except FileNotFoundError:
        raise ArtifactError(f"{INTENSITY_CSV} is missing: run wait-for-window first") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{INTENSITY_CSV}: not a readable CSV ({reason(exc)}): run wait-for-window again") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a column missing, a value that is no number
        raise ArtifactError(f"{INTENSITY_CSV}: not the series wait-for-window wrote ({reason(exc)}): {AGAIN}") from None
