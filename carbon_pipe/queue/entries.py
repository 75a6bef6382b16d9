"""Queue entries: one DVC experiment each, from `-S key=value` overrides (comma lists expand into a grid, as
`dvc exp run --queue -S` does), checked against the params schema, with an expected duration, power and deadline."""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from ..artifacts import read_model, reason
from ..config.params import Params, parse_params
from ..errors import ArtifactError, FieldError, ParamsError, UsageError
from ..timeutil import parse_duration
from ..training.duration import expected_duration
from ..training.run_summary import RunSummary

# A workstation training on one accelerator; used when no run has measured this project's power yet.
DEFAULT_POWER_KW = 0.2
ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a DVC experiment name and a folder name


MAX_GRID = 10_000  # entries one `add` may expand to; the joint plan is measured up to 1,000


@dataclass(frozen=True)
class Estimate:
    value: float
    basis: str  # how it was found, in words


def split_override(text: str) -> tuple[str, list[str]]:
    """`key=a,b` -> (key, [a, b]); commas inside [...] or {...} belong to one YAML value, not a sweep."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"-S {text!r}: expected key=value")
    values, depth, current = [], 0, ""
    for char in value:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    return key.strip(), values + [current]


def expand(overrides: list[str]) -> list[dict[str, str]]:
    """Every combination of the overrides' values, in order (the last key varies fastest)."""
    pairs = [split_override(text) for text in overrides]
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise UsageError(f"-S: a key is given twice: {sorted(key for key in keys if keys.count(key) > 1)[0]}")
    combinations = math.prod(len(values) for _, values in pairs)
    if combinations > MAX_GRID:  # counted before any is made: a grid of lists multiplies fast
        raise UsageError(f"-S: a grid of {combinations:,} entries, more than one add takes ({MAX_GRID:,})")
    return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in pairs))]


def entry_params(raw: dict[str, Any], overrides: dict[str, str], entry: str) -> Params:
    """params.yaml with the entry's overrides, validated; a bad key or value is one line naming the entry."""
    params = copy.deepcopy(raw)
    for key, text in overrides.items():
        node, parts = params, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise FieldError(f"entry {entry}", f"-S {key}: unknown key (params.yaml has no {part!r} there)")
            node = node[part]
        if parts[-1] not in node:
            raise FieldError(f"entry {entry}", f"-S {key}: unknown key (params.yaml has no such key)")
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else text
    try:
        return parse_params(params, origin=f"entry {entry}")
    except ParamsError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def entry_names(name: Optional[str], count: int, taken: set[str]) -> list[str]:
    """`name`, or name-1..name-N for a grid; without a name, q1, q2, ... after the names already taken."""
    if name is not None and not ENTRY_NAME.fullmatch(name):
        raise UsageError(f"--name: {name!r} is not an entry name (letters, digits, '.', '_', '-'; at most 63)")
    if name is not None:
        names = [name] if count == 1 else [f"{name}-{index}" for index in range(1, count + 1)]
    else:
        numbers = itertools.count(1)
        names = []
        while len(names) < count:
            candidate = f"q{next(numbers)}"
            if candidate not in taken:
                names.append(candidate)
    clash = next((each for each in names if each in taken), None)
    if clash is not None:
        raise UsageError(f"entry {clash}: already in the queue (each entry names one DVC experiment)")
    return names


def duration_of(params: Params, requested: str, measured: Optional[float], entry: str) -> Estimate:
    """`auto`: the entry's configuration as the queue last measured it, else scaled from the last optimized run,
    else scheduler.fallback_duration; or a duration given."""
    if requested != "auto":
        try:
            seconds = parse_duration(requested)
        except ValueError as exc:
            raise FieldError(f"entry {entry}", f"--duration: {exc}") from None
        if seconds <= 0:
            raise FieldError(f"entry {entry}", f"--duration: must be positive, got {requested!r}")
        return Estimate(seconds, "--duration")
    if measured is not None:
        return Estimate(measured, "the last run of this configuration in the queue")
    auto = params.model_copy(
        update={"scheduler": params.scheduler.model_copy(update={"expected_duration": "auto"})}
    )
    estimate = expected_duration(auto)
    return Estimate(estimate.seconds, estimate.basis)


def power_of(requested: Optional[float], measured_run: Path, entry: str) -> Estimate:
    """--power, else the mean power of the last optimized run (its run summary), else DEFAULT_POWER_KW."""
    if requested is not None:
        if not requested > 0:
            raise FieldError(f"entry {entry}", f"--power: must be positive kW, got {requested}")
        return Estimate(requested, "--power")
    if not measured_run.exists():
        return Estimate(DEFAULT_POWER_KW, f"the default {DEFAULT_POWER_KW} kW (no measured run in {measured_run})")
    try:
        summary = read_model(measured_run, RunSummary, "a run summary", "run train again, or give --power")
    except ArtifactError as exc:
        return Estimate(DEFAULT_POWER_KW, f"the default {DEFAULT_POWER_KW} kW ({reason(exc)})")
    watts = summary.carbon_metrics.avg_power_watts
    if watts is None or watts <= 0:
        return Estimate(DEFAULT_POWER_KW, f"the default {DEFAULT_POWER_KW} kW ({measured_run} measured no power)")
    return Estimate(watts / 1000, f"the mean power of the last run in {measured_run}")


def add_entries(
    params_path: Path,
    overrides: list[str],
    name: Optional[str],
    duration: str,
    power: Optional[float],
    deadline: Optional[float],
    slack: Optional[float],
    arrival: float,
    interruptible: bool = False,
) -> list[Any]:
    """Check every entry of the grid first, then add them all in one write: a bad one adds none. An interruptible
    entry may run in chunks, none shorter than its configuration's scheduler.min_chunk."""
    from ..layout import run_metrics
    from .store import Entry, changing

    raw = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    grid = expand(overrides)
    with changing() as queue:
        names = entry_names(name, len(grid), {entry.name for entry in queue.entries})
        measured = {
            tuple(sorted(entry.overrides.items())): entry.finished_at - entry.started_at
            for entry in queue.in_state("done")
            if entry.finished_at is not None and entry.started_at is not None
        }
        added = []
        for entry_name, chosen in zip(names, grid):
            params = entry_params(raw, chosen, entry_name)
            length = duration_of(params, duration, measured.get(tuple(sorted(chosen.items()))), entry_name)
            watts = power_of(power, run_metrics("optimized"), entry_name)
            due = _deadline(entry_name, arrival, length.value, deadline, slack, params.scheduler.max_wait)
            added.append(Entry(
                name=entry_name, overrides=chosen, arrival=arrival, deadline=due, duration=length.value,
                duration_basis=length.basis, power_kw=watts.value, power_basis=watts.basis,
                chunk_floor=params.scheduler.min_chunk if interruptible else None,
            ))
        queue.entries.extend(added)
    return added


def _deadline(
    entry: str, arrival: float, duration: float, deadline: Optional[float], slack: Optional[float], max_wait: float
) -> float:
    """--deadline, or arrival + --slack, or (neither) as a single job waits: arrival + scheduler.max_wait + duration."""
    if deadline is not None and slack is not None:
        raise UsageError("--deadline and --slack: give one of them")
    due = deadline if deadline is not None else arrival + (slack if slack is not None else max_wait + duration)
    if due <= arrival:
        raise FieldError(f"entry {entry}", "--deadline: it is before the entry's arrival (now)")
    if duration > due - arrival:
        raise FieldError(
            f"entry {entry}",
            f"its expected duration {duration:.0f} s is longer than the slack {due - arrival:.0f} s to its deadline",
        )
    return due
