"""The params.yaml schema. Everything is validated before any stage does work, so a typo costs one line, not a run."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import ParamsError
from .timeutil import parse_duration, parse_instant

Seconds = Annotated[float, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[Seconds, Field(gt=0)]
Instant = Annotated[float, BeforeValidator(parse_instant)]


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/London)") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DatasetName = Literal["mnist", "fashion-mnist", "cifar10"]


class DataParams(Section):
    dataset: DatasetName = "mnist"
    train_limit: Optional[Annotated[int, Field(ge=1)]] = None
    test_limit: Optional[Annotated[int, Field(ge=1)]] = None


class MockCurveParams(Section):
    peak: Annotated[float, Field(ge=0)] = 450.0
    trough: Annotated[float, Field(ge=0)] = 200.0
    peak_hour: Annotated[float, Field(ge=0, lt=24)] = 18.0
    trough_hour: Annotated[float, Field(ge=0, lt=24)] = 3.0


class CarbonParams(Section):
    source: Literal["mock"] = "mock"
    region: str = "GB"
    timezone: TimeZoneName = "Europe/London"
    country_iso_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBR"
    resolution: PositiveSeconds = 1800.0
    horizon: PositiveSeconds = 48 * 3600.0
    mock: MockCurveParams = MockCurveParams()


class SchedulerParams(Section):
    clock: Literal["simulated", "real"] = "simulated"
    now: Optional[Instant] = None
    rule: Literal["lowest-mean", "threshold", "now"] = "lowest-mean"
    threshold: Annotated[float, Field(ge=0)] = 250.0
    max_wait: Seconds = 12 * 3600.0
    check_interval: PositiveSeconds = 300.0
    expected_duration: PositiveSeconds = 600.0


def _class_path(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
        raise ValueError(f"expected 'package.module:ClassName', got {value!r}")
    return value


class ModelParams(Section):
    # `class` is a Python keyword, so the field has another name and reads the key through its alias.
    class_path: Annotated[str, AfterValidator(_class_path)] = Field("carbon_pipe.model:SimpleCNN", alias="class")
    kwargs: dict[str, Any] = {}


class TrainParams(Section):
    epochs: Annotated[int, Field(ge=1)] = 3
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    lr_schedule: Literal["onecycle", "constant"] = "onecycle"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_batch_size: Annotated[int, Field(ge=1)] = 1000
    checkpoint_every: Annotated[int, Field(ge=1)] = 200  # optimizer steps between resume checkpoints


class EnergyParams(Section):
    measure_power_secs: Annotated[float, Field(gt=0)] = 5.0


class RunParams(Section):
    batch_size: Annotated[int, Field(ge=1)]
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] = 1
    mixed_precision: bool = False
    compile: bool = False        # torch.compile the model
    channels_last: bool = False  # NHWC memory format for the model and its input batches

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


class Params(Section):
    seed: Annotated[int, Field(ge=0)] = 42
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    carbon: CarbonParams = CarbonParams()
    scheduler: SchedulerParams = SchedulerParams()
    train: TrainParams = TrainParams()
    energy: EnergyParams = EnergyParams()
    baseline: RunParams = RunParams(batch_size=64)
    optimized: RunParams = RunParams(batch_size=16, gradient_accumulation_steps=4, mixed_precision=True)

    def run(self, name: str) -> RunParams:
        return {"baseline": self.baseline, "optimized": self.optimized}[name]


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


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc)
        known = [field.alias or name for name, field in owner.model_fields.items()] if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""
        return f"{path}: unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = f"{message}, got {error['input']!r}"
    return f"{path}: {message}"


def parse_params(raw: Any, origin: str = "params.yaml") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{origin}: {_describe(error)}" for error in exc.errors()]
        raise ParamsError("\n".join(lines)) from None
    if params.scheduler.clock == "simulated" and params.scheduler.now is None:
        raise ParamsError(f"{origin}: scheduler.now: required when scheduler.clock is simulated")
    return params


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
