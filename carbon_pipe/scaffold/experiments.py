"""`carbon-pipe experiments`: a project's DVC experiments side by side in the dozen columns that matter (the params
that differ between them, CO2, the schedule and configuration effects with their intervals, accuracy, time), read
from `dvc exp show --json` and metrics/summary.json's keys."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import ValidationError

from ..artifacts import FROM_FILE, problem
from ..errors import ArtifactError, UsageError
from ..layout import SUMMARY_METRICS
from ..report.summaries import KeyMetrics


@dataclass(frozen=True)
class Experiment:
    """One row of `dvc exp show`: the workspace, a commit, or an experiment of a commit."""

    name: str
    params: dict[str, Any]  # flattened: "scheduler.max_wait" (prefixed "file:" for a params file other than the first)
    summary: Optional[KeyMetrics]  # None: no metrics/summary.json there, or not one compare wrote
    no_summary: str = "no metrics"  # what the row shows without one


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _experiment(name: str, data: Optional[dict]) -> Experiment:
    data = data or {}
    params: dict[str, Any] = {}
    for index, (file, content) in enumerate((data.get("params") or {}).items()):
        for key, value in _flat((content or {}).get("data") or {}).items():
            params[key if index == 0 else f"{file}:{key}"] = value
    summary = ((data.get("metrics") or {}).get(str(SUMMARY_METRICS)) or {}).get("data")
    if not summary:
        return Experiment(name, params, None)
    try:
        return Experiment(name, params, KeyMetrics.model_validate(summary, context=FROM_FILE))
    except ValidationError as exc:
        return Experiment(name, params, None, f"unreadable metrics ({problem(exc)})")


def _name(entry: dict) -> str:
    """An experiment's or branch's name, else the revision ("workspace", or a commit's first 7 hex digits)."""
    rev = str(entry.get("rev", ""))
    return entry.get("name") or (rev[:7] if len(rev) == 40 else rev)


def experiments(shown: list) -> list[Experiment]:
    """The rows of `dvc exp show --json`, in its order: each commit, then its experiments."""
    rows = []
    for entry in shown:
        rows.append(_experiment(_name(entry), entry.get("data")))
        for experiment in entry.get("experiments") or []:
            rows += [_experiment(_name(run), run.get("data")) for run in experiment.get("revs") or []]
    return rows


def changed_params(rows: list[Experiment]) -> list[str]:
    """The params whose value is not the same in every row (a key a row lacks takes the schema's default there)."""
    keys = dict.fromkeys(key for row in rows for key in row.params)
    return [key for key in keys if len({json.dumps(row.params.get(key), default=str) for row in rows}) > 1]


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def _with_interval(summary: KeyMetrics, key: str, missing: str) -> str:
    value, low, high = (getattr(summary, name) for name in (key, f"{key}_low", f"{key}_high"))
    if value is None:
        return missing
    if low is None and high is None:
        return f"{value:.4g}"
    return f"{value:.4g} [{_num(low, '.4g')}, {_num(high, '.4g')}]"


COLUMNS: tuple[tuple[str, Callable[[KeyMetrics], str]], ...] = (
    ("CO2 g (optimized)", lambda s: _num(s.optimized_co2_g, ".4g")),
    ("CO2 g (baseline)", lambda s: _num(s.baseline_co2_g, ".4g")),
    ("reduction %", lambda s: _num(s.co2_reduction_pct, ".1f")),
    ("schedule effect g [95 %]", lambda s: _with_interval(s, "schedule_effect_g", "-")),
    ("configuration effect g [95 %]", lambda s: _with_interval(s, "configuration_effect_g", "not profiled")),
    ("accuracy % (opt / base)", lambda s: f"{_num(s.optimized_accuracy_pct, '.2f')} / "
                                          f"{_num(s.baseline_accuracy_pct, '.2f')}"),
    ("time s (opt / base)", lambda s: f"{_num(s.optimized_time_s, '.1f')} / {_num(s.baseline_time_s, '.1f')}"),
    ("waited h", lambda s: _num(s.optimized_wait_h, ".2f")),
    ("energy Wh (optimized)", lambda s: _num(s.optimized_energy_wh, ".4g")),
)


def table(rows: list[Experiment]) -> tuple[list[str], list[list[str]]]:
    changed = changed_params(rows)
    headers = ["experiment", "changed params", *(name for name, _ in COLUMNS)]
    cells = [
        [row.name, ", ".join(f"{key}={row.params.get(key, '(default)')}" for key in changed) or "-"]
        + [cell(row.summary) if row.summary else row.no_summary for _, cell in COLUMNS]
        for row in rows
    ]
    return headers, cells


def render(headers: list[str], cells: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in [headers, *cells]]
    return "\n".join(lines)


def exp_show(options: list[str]) -> list:
    """`dvc exp show --json` in this folder, with `options` (e.g. -A, -n 3)."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *options]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(f"dvc exp show failed: {detail}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"dvc exp show --json printed no JSON ({exc.msg})") from None
