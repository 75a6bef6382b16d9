"""The `carbon` section of params.yaml: each source's settings, the regions, and one command's source overrides.

Pydantic only, so loading params never imports a source's network code. It is the lowest layer of the schema:
the building blocks every section shares (the frozen `Section` base, durations, one-line error descriptions,
re-validated replacements) live here too, and params.py builds the other sections from them.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..errors import ParamsError, deprecated
from ..timeutil import parse_duration

# Longer is a mistake (a unit slip, 1e20): it would carry times past what the clocks and the calendar hold.
LONGEST = 100 * 365.25 * 86400.0
MINUTE = 60.0


def checked_duration(value: Any) -> float:
    """A duration in seconds: finite, not negative, at most a century."""
    seconds = parse_duration(value)
    if seconds > LONGEST:
        raise ValueError(f"duration {value!r} is longer than a century")
    return seconds


Seconds = Annotated[float, BeforeValidator(checked_duration)]
PositiveSeconds = Annotated[Seconds, Field(gt=0)]


def at_least(shortest: float, words: str) -> AfterValidator:
    def check(seconds: float) -> float:
        if seconds < shortest:
            raise ValueError(f"must be at least {words} ({shortest:g}s), got {seconds:g} s")
        return seconds

    return AfterValidator(check)


# How long an intensity point holds: finer than a minute only multiplies the points (0.001 s over 48 h: 173 million).
Step = Annotated[Seconds, at_least(MINUTE, "a minute")]
Count = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a size or number of steps that every tensor index can hold


class Section(BaseModel):
    """A section of params.yaml: frozen, an unknown key is an error, not ignored, and every float is finite (YAML's
    .nan and .inf, which compare false to every bound, are refused once here for every field)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def one_of(known: Callable[[], Any], what: str) -> Callable[[str], str]:
    """A validator for a name that must be a key of `known()` (looked up when params are checked)."""

    def check(name: str) -> str:
        names = list(known())
        if name not in names:
            raise ValueError(f"unknown {what} {name!r} (known: {', '.join(names)})")
        return name

    return check


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that owns the key at `loc` below `root` (for 'did you mean' hints)."""
    model = root
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def describe(error: dict[str, Any], root: type[BaseModel]) -> tuple[str, str]:
    """(key path, message) of one validation error of `root`."""
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(root, loc)
        known = [field.alias or name for name, field in owner.model_fields.items()] if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
        return path, f"unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = f"{message}, got {error['input']!r}"
    return path, message


def replaced(section: Section, option: str, changes: dict[str, Any]) -> Any:
    """`section` with `changes` (a nested dict) applied and validated again; errors name `option`."""

    def merge(base: dict, update: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) else v for k, v in update.items()}}

    try:
        return type(section).model_validate(merge(section.model_dump(), changes))
    except ValidationError as exc:
        raise ParamsError(f"{option}: {describe(exc.errors()[0], type(section))[1]}") from None


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/London)") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
# gCO2/kWh, up to series.MAX_INTENSITY: a higher figure is past any grid (a unit error or garbage).
Intensity = Annotated[float, Field(ge=0, le=10_000)]


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


def _trace_presets() -> Any:
    from .traces import PRESETS  # pandas: only when params are validated, never on --help

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


MOVED_TO_MOCK = ("region", "timezone", "resolution")  # once top-level keys of `carbon`, read by the mock source only


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

    @model_validator(mode="before")
    @classmethod
    def _read_moved_keys(cls, raw: Any) -> Any:
        """Params files written before the mock keys moved keep working, with a notice."""
        if not isinstance(raw, dict) or not any(key in raw for key in MOVED_TO_MOCK):
            return raw
        raw, mock = dict(raw), raw.get("mock") or {}
        mock = dict(mock.model_dump() if isinstance(mock, BaseModel) else mock)
        for key in MOVED_TO_MOCK:
            if key in raw:
                if key in mock:
                    raise ValueError(f"{key} moved to carbon.mock.{key}, which is set too: remove carbon.{key}")
                deprecated(f"carbon.{key} is now carbon.mock.{key} (only the mock source reads it)")
                mock[key] = raw.pop(key)
        return {**raw, "mock": mock}


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
