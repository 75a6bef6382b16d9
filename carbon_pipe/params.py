"""The params.yaml schema. Everything is validated before any stage does work, so a typo costs one line, not a run."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .datasets.catalog import CUSTOM, DATASETS, FOLDER, OWN_DATASETS
from .errors import ParamsError
from .timeutil import parse_duration, parse_instant

Seconds = Annotated[float, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[Seconds, Field(gt=0)]


def _instant(value: Any) -> Any:
    # Epoch seconds pass through, so a validated section can be dumped and validated again.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return parse_instant(value)


Instant = Annotated[float, BeforeValidator(_instant)]


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/London)") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(known: Callable[[], Any], what: str) -> Callable[[str], str]:
    """A validator for a name that must be a key of `known()` (looked up when params are checked)."""

    def check(name: str) -> str:
        names = list(known())
        if name not in names:
            raise ValueError(f"unknown {what} {name!r} (known: {', '.join(names)})")
        return name

    return check


def _trace_presets() -> Any:
    from .intensity.traces import PRESETS  # pandas: only when params are validated, never on --help

    return PRESETS


DatasetName = Annotated[str, AfterValidator(_one_of(lambda: [*DATASETS, *OWN_DATASETS], "dataset"))]


def _only_for(kind: str) -> Callable[[Any, ValidationInfo], Any]:
    """A validator for a key that `data.dataset: kind` needs and no other dataset reads (so a stale one is not
    silently ignored)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        dataset = info.data.get("dataset")
        if dataset is None:  # data.dataset itself is invalid, and says so
            return value
        if dataset == kind and value is None:
            raise ValueError(f"required when data.dataset is {kind}")
        if dataset != kind and value is not None:
            raise ValueError(f"only read when data.dataset is {kind} (it is {dataset})")
        return value

    return check


def _function_path(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
        raise ValueError(f"expected 'package.module:function', got {value!r}")
    return value


class DataParams(Section):
    dataset: DatasetName = "mnist"  # first: the keys below are checked against it
    train_limit: Optional[Annotated[int, Field(ge=1)]] = None
    test_limit: Optional[Annotated[int, Field(ge=1)]] = None
    # dataset folder: the folder, how its images become tensors, and how a single tree is split
    path: Annotated[Optional[Annotated[str, Field(min_length=1)]], AfterValidator(_only_for(FOLDER))] = None
    image_size: Optional[Annotated[int, Field(ge=1, le=4096)]] = None
    channels: Literal["auto", 1, 3] = "auto"
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    split_seed: Annotated[int, Field(ge=0)] = 0
    # dataset custom: `class` is a Python keyword, so the field has another name and reads the key through its alias
    class_path: Annotated[Optional[Annotated[str, AfterValidator(_function_path)]], AfterValidator(_only_for(CUSTOM))] = (
        Field(None, alias="class")
    )

    @model_validator(mode="before")
    @classmethod
    def _check_absent_keys_too(cls, raw: Any) -> Any:
        # An absent key is validated as null, so "required when ..." names it as params.yaml spells it (`class`).
        return {"path": None, "class": None, **raw} if isinstance(raw, dict) else raw


class MockCurveParams(Section):
    peak: Annotated[float, Field(ge=0)] = 450.0
    trough: Annotated[float, Field(ge=0)] = 200.0
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
    max_response_mb: Annotated[float, Field(gt=0)] = 4.0  # a larger answer (once decompressed) fails the source
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
    resolution: PositiveSeconds = 3600.0  # how long each point holds (the API is hourly)


class WattTimeParams(HttpSourceParams):
    base_url: HttpUrl = "https://api.watttime.org"
    region: Annotated[str, Field(min_length=1)] = "CAISO_NORTH"
    signal_type: Literal["co2_moer", "co2_aoer"] = "co2_moer"


class CsvSourceParams(Section):
    path: Optional[str] = None
    preset: Annotated[str, AfterValidator(_one_of(_trace_presets, "preset"))] = "canonical"  # the options below override it
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
    region: str = "GB"
    timezone: TimeZoneName = "Europe/London"
    resolution: PositiveSeconds = 1800.0
    horizon: PositiveSeconds = 48 * 3600.0
    alternatives: list[Location] = []
    mock: MockCurveParams = MockCurveParams()
    uk: UkSourceParams = UkSourceParams()
    electricitymaps: ElectricityMapsParams = ElectricityMapsParams()
    watttime: WattTimeParams = WattTimeParams()
    csv: CsvSourceParams = CsvSourceParams()


def _duration_or_auto(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"duration must be positive or auto, got {value!r}")
    return seconds


class SchedulerParams(Section):
    clock: Literal["simulated", "real"] = "simulated"
    now: Optional[Instant] = None
    rule: Literal["lowest-mean", "threshold", "now"] = "lowest-mean"
    mode: Literal["flexible", "interruptible"] = "flexible"
    min_chunk: Seconds = 0.0
    threshold: Annotated[float, Field(ge=0)] = 250.0
    max_wait: Seconds = 12 * 3600.0
    # rule lowest-mean: a plan saving less than this % against starting now starts now (see the README)
    min_saving_pct: Annotated[float, Field(ge=0, lt=100, allow_inf_nan=False)] = 0.1
    replan_interval: PositiveSeconds = 1800.0
    expected_duration: Annotated[Union[float, Literal["auto"]], BeforeValidator(_duration_or_auto)] = 600.0
    fallback_duration: PositiveSeconds = 600.0


def _class_path(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
        raise ValueError(f"expected 'package.module:ClassName', got {value!r}")
    return value


class ModelParams(Section):
    # `class` is a Python keyword, so the field has another name and reads the key through its alias.
    class_path: Annotated[str, AfterValidator(_class_path)] = Field("carbon_pipe.training.model:SimpleCNN", alias="class")
    kwargs: dict[str, Any] = {}


class TrainParams(Section):
    epochs: Annotated[int, Field(ge=1)] = 3
    learning_rate: Annotated[float, Field(gt=0)] = 3e-3
    lr_schedule: Literal["onecycle", "constant"] = "onecycle"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_batch_size: Annotated[int, Field(ge=1)] = 1000
    checkpoint_every: Annotated[int, Field(ge=1)] = 200  # optimizer steps between resume checkpoints


class EnergyParams(Section):
    measure_power_secs: Annotated[float, Field(gt=0)] = 5.0
    country_iso_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBR"  # CodeCarbon's static-average reference figure only


class RunParams(Section):
    batch_size: Annotated[int, Field(ge=1)]
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] = 1
    mixed_precision: bool = False
    compile: bool = False        # torch.compile the model
    channels_last: bool = False  # NHWC memory format for the model and its input batches

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


def _even(rounds: int) -> int:
    if rounds % 2:
        raise ValueError(f"must be even (each round's order mirrors the one before, ABBA), got {rounds}")
    return rounds


class ProfileParams(Section):
    rounds: Annotated[int, Field(ge=4), AfterValidator(_even)] = 10
    warmup_rounds: Annotated[int, Field(ge=1)] = 1
    burst_seconds: Annotated[float, Field(gt=0)] = 0.25


class Params(Section):
    """Every section must be present: DVC reads the same keys, and a missing section is a mistake, not a default."""

    seed: Annotated[int, Field(ge=0)]
    data: DataParams
    model: ModelParams
    carbon: CarbonParams
    scheduler: SchedulerParams
    train: TrainParams
    energy: EnergyParams
    baseline: RunParams
    optimized: RunParams
    profile: ProfileParams

    def run(self, name: str) -> RunParams:
        return {"baseline": self.baseline, "optimized": self.optimized}[name]


# Where each source reads its region (zone, region id, ...) from, inside `carbon`.
REGION_KEYS: dict[str, tuple[str, ...]] = {
    "mock": ("region",),
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


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that owns the key at `loc` (for 'did you mean' hints)."""
    model: type[BaseModel] = Params
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(key path, message) of one validation error."""
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc)
        known = [field.alias or name for name, field in owner.model_fields.items()] if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
        return path, f"unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = f"{message}, got {error['input']!r}"
    return path, message


def _check_consistency(params: Params, origin: str) -> Params:
    """Rules that span keys, checked after each key is valid on its own."""
    if params.scheduler.clock == "simulated" and params.scheduler.now is None:
        raise ParamsError(f"{origin}: scheduler.now: required when scheduler.clock is simulated")
    if params.scheduler.mode == "interruptible" and params.scheduler.rule != "lowest-mean":
        raise ParamsError(f"{origin}: scheduler.mode: interruptible needs rule lowest-mean, got rule {params.scheduler.rule}")
    used = params.carbon.sources + [place.source for place in params.carbon.alternatives]
    if "csv" in used and not params.carbon.csv.path:
        raise ParamsError(f"{origin}: carbon.csv.path: required when the csv source is used")
    for index, place in enumerate(params.carbon.alternatives):
        carbon_for(params.carbon, place.source, place.region, f"{origin}: carbon.alternatives.{index}.region")
    return params


def parse_params(raw: Any, origin: str = "params.yaml") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        described = [_describe(error) for error in exc.errors()]
        # A misspelt key also leaves its correct spelling missing; the "did you mean" line already says so.
        suggested = {message.split("did you mean ")[1].rstrip("?)") for _, message in described if "did you mean" in message}
        lines = [f"{origin}: {path}: {message}" for path, message in described if not (message == "Field required" and path in suggested)]
        raise ParamsError("\n".join(lines)) from None
    return _check_consistency(params, origin)


def load_params(path: str | Path) -> Params:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{source}: no such params file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{source}: cannot read params file ({exc.__class__.__name__})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ParamsError(f"{source}: invalid YAML{where}: {problem}") from None
    return parse_params(raw, origin=str(source))


def _replaced(section: Section, option: str, changes: dict[str, Any]) -> Any:
    """`section` with `changes` (a nested dict) applied and validated again; errors name `option`."""

    def merge(base: dict, update: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) else v for k, v in update.items()}}

    try:
        return type(section).model_validate(merge(section.model_dump(), changes))
    except ValidationError as exc:
        raise ParamsError(f"{option}: {_describe(exc.errors()[0])[1]}") from None


def _nested(keys: tuple[str, ...], value: Any) -> dict:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nested(keys[1:], value)}


def carbon_for(carbon: CarbonParams, source: str, region: str | None = None, option: str = "region") -> CarbonParams:
    """`carbon` with `source`'s region set to `region` (validated the way params.yaml is)."""
    if region is None:
        return carbon
    return _replaced(carbon, option, _nested(REGION_KEYS[source], region))


def with_overrides(
    params: Params,
    sources: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    duration: str | None = None,
    slack: str | None = None,
) -> Params:
    """One-off command-line overrides (`--source uk,mock --region 13 ...`); the region and base URL apply to
    the first source of the chain."""
    carbon, scheduler = params.carbon, params.scheduler
    if sources is not None:
        carbon = _replaced(carbon, "--source", {"sources": [name.strip() for name in sources.split(",")]})
    primary = carbon.sources[0]
    carbon = carbon_for(carbon, primary, region, "--region")
    if base_url is not None:
        if primary not in HTTP_SOURCES:
            raise ParamsError(f"--base-url: source {primary} has no base URL (HTTP sources: {', '.join(HTTP_SOURCES)})")
        carbon = _replaced(carbon, "--base-url", {primary: {"base_url": base_url}})
    if duration is not None:
        scheduler = _replaced(scheduler, "--duration", {"expected_duration": duration})
    if slack is not None:
        scheduler = _replaced(scheduler, "--slack", {"max_wait": slack})
    return _check_consistency(params.model_copy(update={"carbon": carbon, "scheduler": scheduler}), "options")
