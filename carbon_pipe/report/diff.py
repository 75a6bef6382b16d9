"""`carbon-pipe diff A B`: two revisions' key metrics side by side, each difference said for what it is.

When the two runs had the same params and the same code, every difference between them is run-to-run noise (the
machine, its neighbours, a process's start state), and is marked so. Otherwise an energy, emissions or time
difference inside the measured noise band (the band `compare` writes into metrics/summary.json from the profile's
spread between fresh processes) is marked as within noise, not as a change.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Optional

import yaml
from pydantic import ValidationError

from ..artifacts import FROM_FILE, problem
from ..errors import UsageError
from .summaries import KeyMetrics

WORKSPACE = "workspace"
SUMMARY, PARAMS = "metrics/summary.json", "params.yaml"
CODE = ("carbon_pipe", "custom_models", "dvc.yaml")  # what decides a run besides its params
NOISE_KEYS = {"energy_noise_pct": ("energy_wh", "co2_g", "sci_g"), "time_noise_pct": ("time_s",)}
SAME_INPUTS, WITHIN, CHANGED, EQUAL = "run-to-run noise (same params and code)", "within noise", "change", "same"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=60)


def read_at(revision: str, path: str) -> str:
    """A file as it is at `revision` (git), or in the working tree for `workspace`."""
    if revision == WORKSPACE:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            raise UsageError(f"{path}: not found in the workspace (run `dvc repro` first)") from None
    shown = _git("show", f"{revision}:{path}")
    if shown.returncode:
        raise UsageError(f"{revision}:{path}: {shown.stderr.strip().splitlines()[-1] if shown.stderr else 'not found'}")
    return shown.stdout


def same_code(a: str, b: str) -> bool:
    """No difference in the code that decides a run between the two revisions (`workspace`: the working tree)."""
    revisions = [revision for revision in (a, b) if revision != WORKSPACE]
    return _git("diff", "--quiet", *revisions, "--", *CODE).returncode == 0


@dataclass(frozen=True)
class Row:
    metric: str
    a: Optional[float]
    b: Optional[float]
    note: str

    @property
    def delta(self) -> Optional[float]:
        return None if self.a is None or self.b is None else self.b - self.a


def key_metrics_at(revision: str) -> KeyMetrics:
    """metrics/summary.json at `revision`; one that compare did not write (edited, cut short, another version's) is
    one line naming it."""
    where = SUMMARY if revision == WORKSPACE else f"{revision}:{SUMMARY}"
    try:
        return KeyMetrics.model_validate(json.loads(read_at(revision, SUMMARY)), context=FROM_FILE)
    except json.JSONDecodeError as exc:
        problem_text = f"not valid JSON ({exc.msg}, line {exc.lineno})"
    except ValidationError as exc:
        problem_text = f"not the key metrics compare writes ({problem(exc)})"
    raise UsageError(f"{where}: {problem_text}: run `dvc repro compare` at that revision and commit its metrics")


def band_of(metric: str, a: KeyMetrics, b: KeyMetrics) -> Optional[float]:
    """The wider of the two runs' measured noise bands for this metric, in %, if it has one."""
    for band, kinds in NOISE_KEYS.items():
        if any(kind in metric for kind in kinds):
            bands = [getattr(run, band) for run in (a, b) if getattr(run, band) is not None]
            return max(bands) if bands else None
    return None


def classify(a: KeyMetrics, b: KeyMetrics, same_inputs: bool) -> list[Row]:
    """Every key metric, with what its difference is."""
    rows = []
    for metric in sorted(KeyMetrics.model_fields):
        if metric in NOISE_KEYS:
            continue
        first, second = getattr(a, metric), getattr(b, metric)
        if first == second:
            note = EQUAL
        elif same_inputs:
            note = SAME_INPUTS
        else:
            band = band_of(metric, a, b)
            inside = band is not None and None not in (first, second) and first and (
                abs(second - first) / abs(first) * 100 <= band
            )
            note = f"{WITHIN} (+-{band:.1f} %)" if inside else CHANGED
        rows.append(Row(metric, first, second, note))
    return rows


@dataclass(frozen=True)
class Difference:
    """Two revisions' key metrics compared, and whether their inputs were the same."""

    a: str
    b: str
    same_params: bool
    same_code: bool
    noise_band_pct: dict[str, list[Optional[float]]]  # each band key: [A's, B's]
    rows: list[Row]

    def to_json(self) -> dict:
        return {
            "a": self.a, "b": self.b, "same_params": self.same_params, "same_code": self.same_code,
            "noise_band_pct": self.noise_band_pct,
            "metrics": [{"metric": r.metric, "a": r.a, "b": r.b, "delta": r.delta, "note": r.note} for r in self.rows],
        }


def diff(a: str, b: str) -> Difference:
    metrics = [key_metrics_at(revision) for revision in (a, b)]
    params_same = yaml.safe_load(read_at(a, PARAMS)) == yaml.safe_load(read_at(b, PARAMS))
    code_same = same_code(a, b)
    rows = classify(*metrics, same_inputs=params_same and code_same)
    bands = {band: [getattr(run, band) for run in metrics] for band in NOISE_KEYS}
    return Difference(a, b, params_same, code_same, bands, rows)


def render(result: Difference) -> str:
    same = result.same_params and result.same_code
    lines = [
        f"{result.a} -> {result.b}: params {'same' if result.same_params else 'differ'}, code "
        f"{'same' if result.same_code else 'differs'}"
        + (": every difference below is run-to-run noise" if same else ""),
        f"{'metric':<36}{'A':>14}{'B':>14}{'B - A':>14}  note",
    ]
    for row in result.rows:
        values = [f"{v:>14.4g}" if v is not None else f"{'-':>14}" for v in (row.a, row.b, row.delta)]
        lines.append(f"{row.metric:<36}{''.join(values)}  {row.note}")
    return "\n".join(lines)
