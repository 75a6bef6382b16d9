"""The `carbon` section of params.yaml: each source's settings, the regions, and one command's source overrides.

Pydantic only, so loading params never imports a source's network code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field

from ..errors import ParamsError
from .base import Intensity, PositiveSeconds, Seconds, Section, Step, one_of, replaced


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/London)") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class MockParams(Section):
    """The embedded diurnal curve: where it claims to be, its zone's local time, and its shape."""

    region: str = "GB"  # a label recorded with every number
    timezone: TimeZoneName = "Europe/London"  # the curve peaks at peak_hour in this zone's local time
    resolution: Step = 1800.0  # length of each point
    peak: Intensity = 450.0
    trough: Intensity = 200.0
    peak_hour: Annotated[float, Field(ge=0, lt=24)] = 18.0
    trough_hour: Annotated[float, Field(ge=0, lt=24)] = 3.0


SourceName = Literal["mock", "uk", "electricitymaps", "watttime", "csv"]


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _one_or_more_sources(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class HttpSourceParams(Section):
    """What every HTTP source shares: where it lives and how hard to try before the next source."""

    base_url: HttpUrl
    timeout: PositiveSeconds = 10.0  # each request, from connecting to the last byte of the answer
    source_timeout: PositiveSeconds = 60.0  # all of this source's requests, retries and waits together
    # a larger answer (once decompressed) fails the source
    max_response_mb: Annotated[float, Field(gt=0, le=1024)] = 4.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2  # after the first attempt
    backoff: Seconds = 1.0  # first retry waits this long, then twice as long each time
    max_retry_after: Seconds = 60.0  # a 429 asking to wait longer than this fails the source instead


def _uk_region(value: Any) -> str:
    text = str(value).strip()
    if text.lower() == "national":
        return "national"
    if text.isdigit() and 1 <= int(text) <= 17:
        return text
    if re.fullmatch(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]?", text):
        return text.upper()
    raise ValueError(f"expected national, a region id 1-17 or a postcode outcode like RG10, got {value!r}")


class UkSourceParams(HttpSourceParams):
    base_url: HttpUrl = "https://api.carbonintensity.org.uk"
    region: Annotated[str, BeforeValidator(_uk_region)] = "national"


class ElectricityMapsParams(HttpSourceParams):
    base_url: HttpUrl = "https://api.electricitymap.org/v3"
    zone: Annotated[str, Field(min_length=1)] = "GB"
    resolution: Step = 3600.0  # how long each point holds (the API is hourly)


class WattTimeParams(HttpSourceParams):
    base_url: HttpUrl = "https://api.watttime.org"
    region: Annotated[str, Field(min_length=1)] = "CAISO_NORTH"
    signal_type: Literal["co2_moer", "co2_aoer"] = "co2_moer"


# A trace file's columns and units (intensity/traces.py reads it): a preset's, with the csv section's keys over it.
@dataclass(frozen=True)
class TraceFormat:
    time_column: str = "timestamp"
    value_column: str = "carbon_intensity"
    unit: Literal["g_per_kwh", "lbs_per_mwh"] = "g_per_kwh"
    deduplicate: bool = False  # keep the last row of a repeated timestamp (scraped feeds repeat rows)
    drop_missing: bool = False  # drop rows without a value instead of failing
    sort: bool = False  # sort by time instead of failing on out-of-order rows
    max_gap: Optional[float] = None  # seconds a reading may be held across a hole; None: 4 x the median step, >= 3h


PRESETS: dict[str, TraceFormat] = {
    "canonical": TraceFormat(),
    # dos-group/lets-wait-awhile: Time,Carbon Intensity (naive UTC)
    "lets-wait-awhile": TraceFormat("Time", "Carbon Intensity"),
    # umassos/pause-resume Electricity Maps scrape: repeated rows per data hour
    "electricitymaps-scrape": TraceFormat("zone_datetime", "carbon_intensity_avg", deduplicate=True, sort=True),
    # vessim's WattTime CAISO_NORTH MOER, lbs/MWh
    "watttime-caiso": TraceFormat("time", "Caiso_North", unit="lbs_per_mwh"),
    # NESO actuals as published; the last slot of each daily snapshot has no actual yet
    "uk-actuals": TraceFormat("from_utc", "actual_gco2_kwh", drop_missing=True),
}


def _trace_presets() -> Any:
    return ["auto", *PRESETS]  # auto: the one preset whose columns the file has


class CsvSourceParams(Section):
    path: Optional[str] = None
    preset: Annotated[str, AfterValidator(one_of(_trace_presets, "preset"))] = "canonical"  # the keys below override it
    time_column: Optional[str] = None
    value_column: Optional[str] = None
    unit: Optional[Literal["g_per_kwh", "lbs_per_mwh"]] = None
    deduplicate: Optional[bool] = None
    drop_missing: Optional[bool] = None
    sort: Optional[bool] = None
    max_gap: Optional[PositiveSeconds] = None  # longest hole a reading is held across; None: 4 x the median step, >= 3h
    region: Optional[str] = None  # label; default: the file name


class Location(Section):
    """Somewhere else the job could run, for the spatial choice."""

    source: SourceName
    region: Annotated[str, Field(min_length=1)]


class CarbonParams(Section):
    sources: Annotated[list[SourceName], BeforeValidator(_one_or_more_sources), Field(min_length=1)] = ["mock"]
    fallback: bool = True
    horizon: PositiveSeconds = 48 * 3600.0
    alternatives: list[Location] = []
    mock: MockParams = MockParams()
    uk: UkSourceParams = UkSourceParams()
    electricitymaps: ElectricityMapsParams = ElectricityMapsParams()
    watttime: WattTimeParams = WattTimeParams()
    csv: CsvSourceParams = CsvSourceParams()


# Where each source reads its region (zone, region id, ...) from, inside `carbon`.
REGION_KEYS: dict[str, tuple[str, ...]] = {
    "mock": ("mock", "region"),
    "uk": ("uk", "region"),
    "electricitymaps": ("electricitymaps", "zone"),
    "watttime": ("watttime", "region"),
    "csv": ("csv", "region"),
}
HTTP_SOURCES = ("uk", "electricitymaps", "watttime")


def configured_region(carbon: CarbonParams, source: str) -> str:
    """The region a source is set to report on, as written in params (a csv trace defaults to its file name)."""
    value: Any = carbon
    for key in REGION_KEYS[source]:
        value = getattr(value, key)
    if value is None and source == "csv":
        return Path(carbon.csv.path or "csv").stem
    return str(value)


def _nested(keys: tuple[str, ...], value: Any) -> dict:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nested(keys[1:], value)}


def carbon_for(carbon: CarbonParams, source: str, region: str | None = None, option: str = "region") -> CarbonParams:
    """`carbon` with `source`'s region set to `region` (validated the way params.yaml is)."""
    if region is None:
        return carbon
    return replaced(carbon, option, _nested(REGION_KEYS[source], region))


def check_carbon(carbon: CarbonParams, origin: str) -> None:
    """Rules that span keys of the section, checked after each key is valid on its own."""
    used = carbon.sources + [place.source for place in carbon.alternatives]
    if "csv" in used and not carbon.csv.path:
        raise ParamsError(f"{origin}: carbon.csv.path: required when the csv source is used")
    for index, place in enumerate(carbon.alternatives):
        carbon_for(carbon, place.source, place.region, f"{origin}: carbon.alternatives.{index}.region")


def with_source_overrides(
    carbon: CarbonParams,
    sources: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    trace: str | None = None,
) -> CarbonParams:
    """`--source uk,mock --region 13 --base-url ...`: the region and base URL apply to the chain's first source.
    `--trace FILE` is the csv source on that file, its format told by its columns, first in the chain (unless
    --source names the chain)."""
    if trace is not None:
        chain = carbon.sources if sources is not None else ["csv"]
        carbon = replaced(carbon, "--trace", {"sources": chain, "csv": {"path": trace, "preset": "auto"}})
    if sources is not None:
        carbon = replaced(carbon, "--source", {"sources": [name.strip() for name in sources.split(",")]})
    primary = carbon.sources[0]
    carbon = carbon_for(carbon, primary, region, "--region")
    if base_url is not None:
        if primary not in HTTP_SOURCES:
            raise ParamsError(
                f"--base-url: source {primary} has no base URL (HTTP sources: {', '.join(HTTP_SOURCES)})"
            )
        carbon = replaced(carbon, "--base-url", {primary: {"base_url": base_url}})
    return carbon
