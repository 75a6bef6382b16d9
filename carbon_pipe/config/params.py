"""The params.yaml schema's root: the data, model and scheduler sections, the rules across sections, and loading
the file. Everything is validated before any stage does work, so a typo costs one line, not a run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Callable, Hashable, Literal, Optional, Union

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ..errors import ParamsError, UsageError
from ..timeutil import format_duration, parse_instant
from .base import (
    Count,
    Intensity,
    PositiveSeconds,
    Seconds,
    Section,
    at_least,
    checked_duration,
    describe,
    one_of,
    replaced,
)
from .carbon import CarbonParams, check_carbon, with_source_overrides
from .training import (
    CommandParams,
    EnergyParams,
    OptimizedParams,
    ProfileParams,
    RunParams,
    TrainParams,
)

# "now" on the simulated clock: from the UNIX epoch to 2100, so that now + a century of waiting and horizon stays a
# date every clock, calendar and source can hold.
EARLIEST, LATEST = 0.0, 4102444800.0  # 1970-01-01, 2100-01-01 (UTC)
MOCK_POINTS = 5_000_000  # the most intensity points the mock source makes for one plan (1.75 million: a century)


def _instant(value: Any) -> Any:
    # Epoch seconds pass through, so a validated section can be dumped and validated again.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = parse_instant(value)
    if not EARLIEST <= seconds < LATEST:  # NaN fails too
        raise ValueError(f"time {value!s} is outside 1970 to 2099")
    return seconds


Instant = Annotated[float, BeforeValidator(_instant)]
# The datasets data.dataset may name: the built-in ones (datasets/catalog.py describes each) and the user's own, whose
# sizes and normalisation are only known once fetch-data has read them.
BUILT_IN_DATASETS = ("mnist", "fashion-mnist", "cifar10")
FOLDER = "folder"  # an image folder, data.path
CUSTOM = "custom"  # (train, test) torch Datasets from the function data.class names
OWN_DATASETS = (FOLDER, CUSTOM)
DatasetName = Annotated[str, AfterValidator(one_of(lambda: [*BUILT_IN_DATASETS, *OWN_DATASETS], "dataset"))]


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


def _named(value: str, kind: str) -> str:
    """'package.module:Name', the form of every params key that names user code (model.class, data.class)."""
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
        raise ValueError(f"expected 'package.module:{kind}', got {value!r}")
    return value


def import_named(path: str, key: str, error: type[UsageError], kind: str = "") -> Any:
    """The object `path` ('package.module:Name', from params `key`) names, importable from the installed packages
    or the project folder; a module that fails to import, or lacks the name, is one `error` line naming the key."""
    import importlib
    import sys

    module_name, name = path.split(":")
    project = str(Path.cwd())
    if project not in sys.path:  # the console script's sys.path lacks the project folder that `python -m` has
        sys.path.insert(0, project)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail with anything the module's own code raises
        first_line = (str(exc).splitlines() or [""])[0]
        raise error(f"{key}: cannot import {module_name!r} ({exc.__class__.__name__}: {first_line})") from None
    found = getattr(module, name, None)
    if found is None:
        raise error(f"{key}: module {module_name!r} has no {kind}{name!r}")
    return found


DEFAULT_DATA_PATH = "data/images"
OUTPUT_FOLDERS = ("stages", "metrics")  # what the stages write, under the project folder


def _data_folder(value: Any) -> Any:
    if value is None:
        raise ValueError(
            "must name a folder: fetch-data depends on it in dvc.yaml whatever the dataset "
            f"(default {DEFAULT_DATA_PATH}, which holds only a .gitkeep)"
        )
    if isinstance(value, str) and value.strip():
        project = Path.cwd().resolve()
        folder = (project / value).resolve()
        # A dependency holding the stage's own outputs would change with every run and never be clean.
        if project.is_relative_to(folder) or any(folder.is_relative_to(project / name) for name in OUTPUT_FOLDERS):
            raise ValueError(
                f"{value!r} overlaps the pipeline's own outputs ({', '.join(f'{name}/' for name in OUTPUT_FOLDERS)}), "
                f"which change with every run: name your image folder (default {DEFAULT_DATA_PATH})"
            )
    return value


def _function_path(value: str) -> str:
    return _named(value, "function")


class DataParams(Section):
    dataset: DatasetName = "mnist"  # first: the keys below are checked against it
    train_limit: Optional[Count] = None
    test_limit: Optional[Count] = None
    # dataset folder: the folder, how its images become tensors, and how a single tree is split. dvc.yaml names it
    # in fetch-data's deps (${data.path}) whatever the dataset, so it always names one: the default holds only a
    # .gitkeep, and DVC sees every image added, changed or removed under it.
    path: Annotated[str, BeforeValidator(_data_folder), Field(min_length=1)] = DEFAULT_DATA_PATH
    image_size: Optional[Annotated[int, Field(ge=1, le=4096)]] = None
    channels: Literal["auto", 1, 3] = "auto"
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    split_seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    # dataset custom: `class` is a Python keyword, so the field has another name and reads the key through its alias
    class_path: Annotated[
        Optional[Annotated[str, AfterValidator(_function_path)]], AfterValidator(_only_for(CUSTOM))
    ] = Field(None, alias="class")

    @model_validator(mode="before")
    @classmethod
    def _check_absent_keys_too(cls, raw: Any) -> Any:
        # An absent key is validated as null, so "required when ..." names it as params.yaml spells it (`class`).
        return {"class": None, **raw} if isinstance(raw, dict) else raw


def _duration_or_auto(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    seconds = checked_duration(value)
    if seconds <= 0:
        raise ValueError(f"duration must be positive or auto, got {value!r}")
    return seconds


class SchedulerParams(Section):
    clock: Literal["simulated", "real"] = "real"  # simulated needs `now`
    now: Optional[Instant] = None
    rule: Literal["lowest-mean", "threshold", "now"] = "lowest-mean"
    mode: Literal["flexible", "interruptible"] = "flexible"
    min_chunk: Seconds = 0.0
    threshold: Intensity = 250.0
    max_wait: Seconds = 12 * 3600.0
    # rule lowest-mean: a plan saving less than this % against starting now starts now (see the README)
    min_saving_pct: Annotated[float, Field(ge=0, lt=100)] = 0.1
    replan_interval: Annotated[Seconds, at_least(1, "a second")] = 1800.0  # each re-plan fetches: no busy loop
    expected_duration: Annotated[Union[float, Literal["auto"]], BeforeValidator(_duration_or_auto)] = 600.0
    fallback_duration: PositiveSeconds = 600.0


def _class_path(value: str) -> str:
    return _named(value, "ClassName")


class ModelParams(Section):
    # `class` is a Python keyword, so the field has another name and reads the key through its alias.
    class_path: Annotated[str, AfterValidator(_class_path)] = Field(
        "carbon_pipe.training.model:SimpleCNN", alias="class"
    )
    kwargs: dict[str, Any] = {}


class Params(Section):
    """A key or section left out takes the schema's default (`carbon-pipe params --defaults` prints them all), so a
    project's params file holds only what differs. A section that a dvc.yaml stage lists must be in the file, even
    empty (`energy: {}`): DVC reads it from there."""

    seed: Annotated[int, Field(ge=0, lt=2**32)] = 42  # NumPy's seeds are 32-bit
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    carbon: CarbonParams = CarbonParams()
    scheduler: SchedulerParams = SchedulerParams()
    train: TrainParams = TrainParams()
    energy: EnergyParams = EnergyParams()
    baseline: RunParams = RunParams()
    optimized: OptimizedParams = OptimizedParams()
    profile: ProfileParams = ProfileParams()
    command: CommandParams = CommandParams()

    def configuration(self, run_name: str) -> RunParams:
        """How the run called `run_name` (baseline or optimized) trains (auto: the fields a choice pinned)."""
        return {"baseline": self.baseline, "optimized": self.optimized}[run_name]

    def deciding_fields(self, run_name: str) -> dict[str, Any]:
        """What of the run's own section decides its training (for resume fingerprints)."""
        return self.optimized.deciding_fields() if run_name == "optimized" else self.baseline.configuration_fields()


def _check_consistency(params: Params, origin: str) -> Params:
    """Rules that span keys, checked after each key is valid on its own."""
    if params.scheduler.clock == "simulated" and params.scheduler.now is None:
        raise ParamsError(f"{origin}: scheduler.now: required when scheduler.clock is simulated")
    if params.scheduler.mode == "interruptible" and params.scheduler.rule != "lowest-mean":
        raise ParamsError(
            f"{origin}: scheduler.mode: interruptible needs rule lowest-mean, got rule {params.scheduler.rule}"
        )
    if params.optimized.choose == "auto" and not params.profile.before_training:
        raise ParamsError(f"{origin}: optimized.choose: auto needs profile.before_training: true (it measures)")
    check_carbon(params.carbon, origin)
    _check_mock_points(params, origin)
    return params


def _check_mock_points(params: Params, origin: str) -> None:
    """The mock curve is made point by point over the whole span a plan may use: a fine resolution over a long wait
    would take minutes and gigabytes, so it is refused here, in one line, instead."""
    carbon, scheduler = params.carbon, params.scheduler
    if "mock" not in carbon.sources + [place.source for place in carbon.alternatives]:
        return
    duration = scheduler.expected_duration
    job = scheduler.fallback_duration if duration == "auto" else duration
    span = max(carbon.horizon, scheduler.max_wait + job)
    if span / carbon.mock.resolution > MOCK_POINTS:
        raise ParamsError(
            f"{origin}: carbon.mock.resolution: {format_duration(carbon.mock.resolution)} over "
            f"{format_duration(span)} (carbon.horizon, or scheduler.max_wait + the job) is "
            f"{span / carbon.mock.resolution:,.0f} points, more than {MOCK_POINTS:,}: use a coarser resolution"
        )


def parse_params(raw: Any, origin: str = "params.yaml") -> Params:
    if raw is None:  # an empty file, or one of comments only: `{}` is how to say "all defaults"
        raise ParamsError(f"{origin} is empty: write {{}} to take every default, or the keys that differ")
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        described = [describe(error, Params) for error in exc.errors()]
        # A misspelt key also leaves its correct spelling missing; the "did you mean" line already says so.
        suggested = {
            message.split("did you mean ")[1].rstrip("?)") for _, message in described if "did you mean" in message
        }
        lines = [
            f"{origin}: {path}: {message}"
            for path, message in described
            if not (message == "Field required" and path in suggested)
        ]
        raise ParamsError("\n".join(lines)) from None
    return _check_consistency(params, origin)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last silently, while DVC
    refuses the file, so a pipeline would train with one value and DVC not run at all."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # SafeLoader's own check says so below
                continue
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def default_params() -> Params:
    """Every key at the schema's default: what a project without a params file plans and meters with."""
    return _check_consistency(Params(), "the defaults")


def params_or_defaults(path: Optional[Path], default: Path = Path("params.yaml")) -> Params:
    """The params file named, else ./params.yaml when there is one, else the defaults (a command run outside a
    project: `plan`, `intensity`)."""
    if path is None and not default.is_file():
        return default_params()
    return load_params(default if path is None else path)


def load_params(path: str | Path) -> Params:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{source}: no such params file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{source}: cannot read params file ({exc.__class__.__name__})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ParamsError(f"{source}: invalid YAML{where}: {problem}") from None
    return parse_params(raw, origin=str(source))


def _with_unit(option: str, value: str) -> str:
    """A duration on the command line needs its unit: `--duration 90` is 90 seconds in params, 90 minutes in CATS."""
    if not re.fullmatch(r"\s*[0-9.]+\s*", value):
        return value
    raise ParamsError(f"{option}: {value} has no unit; write {value}min (or {value}s, {value}h)")


def with_overrides(
    params: Params,
    sources: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    duration: str | None = None,
    slack: str | None = None,
    clock: str | None = None,
    now: str | None = None,
    trace: str | None = None,
) -> Params:
    """One-off command-line overrides (`--source uk,mock --region 13 ...`); the region and base URL apply to
    the first source of the chain. `--now` alone puts the call on the simulated clock at that time."""
    carbon, scheduler = with_source_overrides(params.carbon, sources, region, base_url, trace), params.scheduler
    if clock is not None:
        scheduler = replaced(scheduler, "--clock", {"clock": clock})
    if now is not None:
        if scheduler.clock == "real" and clock is not None:
            raise ParamsError("--now: a time to look from is for the simulated clock, not --clock real")
        scheduler = replaced(scheduler, "--now", {"clock": "simulated", "now": now})
    if duration is not None:
        value = duration if duration.strip().lower() == "auto" else _with_unit("--duration", duration)
        scheduler = replaced(scheduler, "--duration", {"expected_duration": value})
    if slack is not None:
        scheduler = replaced(scheduler, "--max-wait", {"max_wait": _with_unit("--max-wait", slack)})
    return _check_consistency(params.model_copy(update={"carbon": carbon, "scheduler": scheduler}), "options")
