"""The schema's building blocks, which every section shares: the frozen `Section` base, durations, counts and
intensities, one-line error descriptions and re-validated replacements. Pydantic only."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import ParamsError
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


# gCO2/kWh, up to series.MAX_INTENSITY: a higher figure is past any grid (a unit error or garbage).
Intensity = Annotated[float, Field(ge=0, le=10_000)]
