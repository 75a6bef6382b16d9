"""The decision wait-for-window hands to train-optimized and compare: when (and where) the job runs, and why.

One writer (`write_decision`: decision.json and its flat summary metrics/schedule.json) and one reader
(`read_decision`, which refuses a decision a stop left without a start); no other module reads its keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..artifacts import read_json, reason, write_json
from ..config.params import Params
from ..errors import ArtifactError
from ..layout import DECISION_JSON, SCHEDULE_METRICS
from ..timeutil import iso, parse_instant
from .planner import Chunk

if TYPE_CHECKING:
    from .duration import DurationEstimate
    from .waiting import Waited

PER_KWH = "expected_mean_intensity_g_per_kwh"
# The fields decision.json keeps under another name (the JSON keys carry their units).
RENAMED = {
    "submitted": "now",
    "initial_intensity": "initial_intensity_g_per_kwh",
    "expected_mean_intensity": PER_KWH,
    "now_mean_intensity": "now_mean_intensity_g_per_kwh",
    "expected_duration": "expected_duration_seconds",
    "max_wait": "max_wait_seconds",
    "min_chunk": "min_chunk_seconds",
    "threshold": "threshold_g_per_kwh",
}


@dataclass(frozen=True)
class Decision:
    """When (and where) the job runs, how that was planned, and how the wait went. Times are epoch seconds."""

    submitted: float  # when the job was submitted: the first attempt's, after a resumed wait
    clock: str  # simulated | real
    rule: str
    mode: str
    start: Optional[float]  # None: stopped before a start was chosen
    expected_end: Optional[float]
    source: Optional[str]  # what served the intensities (None: stopped during the first fetch)
    region: Optional[str]
    initial_intensity: Optional[float]  # g/kWh at submission
    expected_mean_intensity: Optional[float]  # over the planned chunks
    now_mean_intensity: Optional[float]  # over the same length from submission
    expected_saving_vs_now_pct: Optional[float]
    expected_duration: float
    duration_source: str  # params | estimated | fallback
    duration_basis: str
    max_wait: float
    min_chunk: Optional[float]  # the rule's own knobs; None where the rule does not use them
    threshold: Optional[float]
    min_saving_pct: Optional[float]
    chunks: tuple[Chunk, ...]  # in order; one for a flexible plan; what was planned when a stop came
    reason: str
    source_chain: tuple[str, ...]
    source_failures: tuple[dict[str, str], ...]
    fallback: bool
    locations: tuple[dict[str, Any], ...]  # every place considered, the chosen one marked
    replans: int
    replan_failures: tuple[str, ...]
    series_notes: tuple[str, ...]
    signal: Optional[str] = None  # what stopped the wait
    resumed_wait: Optional[dict[str, Any]] = None  # the earlier attempts of a wait that was resumed

    @property
    def interrupted(self) -> bool:
        return self.start is None

    @property
    def slept(self) -> bool:
        return self.clock == "real"

    @property
    def wait_seconds(self) -> Optional[float]:
        return None if self.start is None else self.start - self.submitted

    @property
    def latest_start(self) -> float:
        return self.submitted + self.max_wait

    @property
    def deadline(self) -> float:
        """When all the work must be done: the latest start plus the planned duration (interruptible plans)."""
        return self.latest_start + self.expected_duration

    @property
    def chosen_place(self) -> int:
        """Which place was chosen: 0 the configured sources, k the k-th of carbon.alternatives."""
        return next((index for index, place in enumerate(self.locations) if place["chosen"]), 0)

    def line(self) -> str:
        """The decision in one line, for stderr."""
        fell_back = "".join(f"; fell back: {failure['error']}" for failure in self.source_failures)
        return (
            f"wait-for-window: {self.source} {self.region}, {self.mode} {self.rule}, {self.clock} clock: "
            f"start {iso(self.start)} after {self.wait_seconds / 3600:.2f} h in {len(self.chunks)} chunk(s) "
            f"at {self.expected_mean_intensity:.1f} g/kWh (now {self.now_mean_intensity:.1f}; "
            f"{self.expected_saving_vs_now_pct:.1f} % lower){fell_back}"
        )

    def record(self) -> dict[str, Any]:
        """decision.json."""
        return {
            "source": self.source,
            "region": self.region,
            "clock": self.clock,
            "rule": self.rule,
            "mode": self.mode,
            "now": iso(self.submitted),
            "start": _iso(self.start),
            "expected_end": _iso(self.expected_end),
            "wait_seconds": self.wait_seconds,
            "slept": self.slept,
            "interrupted": self.interrupted,
            "initial_intensity_g_per_kwh": self.initial_intensity,
            "expected_mean_intensity_g_per_kwh": self.expected_mean_intensity,
            "now_mean_intensity_g_per_kwh": self.now_mean_intensity,
            "expected_saving_vs_now_pct": self.expected_saving_vs_now_pct,
            "expected_duration_seconds": self.expected_duration,
            "duration_source": self.duration_source,
            "duration_basis": self.duration_basis,
            "max_wait_seconds": self.max_wait,
            "min_chunk_seconds": self.min_chunk,
            "threshold_g_per_kwh": self.threshold,
            "min_saving_pct": self.min_saving_pct,
            "chunks": chunk_records(self.chunks),
            "reason": self.reason,
            "source_chain": list(self.source_chain),
            "source_failures": list(self.source_failures),
            "fallback": self.fallback,
            "locations": list(self.locations),
            "replans": self.replans,
            "replan_failures": list(self.replan_failures),
            "series_notes": list(self.series_notes),
            "latest_start": iso(self.latest_start),
            "signal": self.signal,
            "resumed_wait": self.resumed_wait,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Decision:
        """decision.json read back; a record that is not one (a key missing, a number that is text) is a
        KeyError, TypeError or ValueError."""
        if not isinstance(record, dict):
            raise TypeError(f"a JSON {type(record).__name__}, not an object")
        values = {}
        for field in dataclasses.fields(cls):
            key = RENAMED.get(field.name, field.name)
            value = record[key]
            if field.name in ("submitted", "start", "expected_end"):
                value = _instant(value)
            elif field.name == "chunks":
                value = tuple(_chunk(chunk) for chunk in value)
            elif "float" in str(field.type):  # a number, or null where it may be: text here would fail much later
                value = None if value is None and "Optional" in str(field.type) else _number(value, key)
            elif isinstance(value, list):
                value = tuple(value)
            values[field.name] = value
        return cls(**values)


def _iso(moment: Optional[float]) -> Optional[str]:
    return None if moment is None else iso(moment)


def _instant(text: Optional[str]) -> Optional[float]:
    return None if text is None else parse_instant(text)


def _chunk(record: dict[str, Any]) -> Chunk:
    return Chunk(parse_instant(record["start"]), parse_instant(record["end"]), _number(record[PER_KWH], PER_KWH))


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}, not a number")
    return float(value)


def chunk_records(chunks: tuple[Chunk, ...]) -> list[dict[str, Any]]:
    return [
        {"start": iso(chunk.start), "end": iso(chunk.end), PER_KWH: chunk.mean_intensity}
        for chunk in chunks
    ]


def _held_to(params: Params, submitted: float, estimate: DurationEstimate, rule: str, mode: str) -> dict[str, Any]:
    """What every decision records of the job and the params it was planned under (the rule's own knobs, None for
    those it does not use)."""
    scheduler = params.scheduler
    return {
        "submitted": submitted,
        "clock": scheduler.clock,
        "rule": rule,
        "mode": mode,
        "duration_source": estimate.source,
        "duration_basis": estimate.basis,
        "max_wait": scheduler.max_wait,
        "min_chunk": scheduler.min_chunk if mode == "interruptible" else None,
        "threshold": scheduler.threshold if rule == "threshold" else None,
        "min_saving_pct": scheduler.min_saving_pct if rule == "lowest-mean" else None,
        "fallback": params.carbon.fallback,
    }


def decided(params: Params, waited: Waited, estimate: DurationEstimate) -> Decision:
    """The decision a wait ended with: its last plan, and the start (None if a stop came first)."""
    outlook, started, submitted = waited.outlook, waited.started, waited.submitted
    plan, series = outlook.plan, outlook.series
    now_mean = series.mean(submitted, submitted + plan.duration)
    where = outlook.record()
    return Decision(
        **_held_to(params, submitted, estimate, plan.rule, plan.mode),
        start=started,
        expected_end=None if started is None else plan.end,
        source=series.source,
        region=series.region,
        initial_intensity=series.at(submitted),
        expected_mean_intensity=plan.expected_mean_intensity,
        now_mean_intensity=now_mean,
        expected_saving_vs_now_pct=100.0 * (1 - plan.expected_mean_intensity / now_mean) if now_mean > 0 else 0.0,
        expected_duration=plan.duration,
        chunks=plan.chunks,
        reason=plan.reason,
        source_chain=tuple(where["source_chain"]),
        source_failures=tuple(where["source_failures"]),
        locations=outlook.locations,
        replans=waited.replans,
        replan_failures=tuple(waited.replan_failures),
        series_notes=series.notes,
    )


# What a wait stopped in its first fetch does not know: no plan, no start, no source.
UNKNOWN = ("start", "expected_end", "source", "region", "initial_intensity", "expected_mean_intensity")
UNKNOWN += ("now_mean_intensity", "expected_saving_vs_now_pct")
NOTHING = ("chunks", "source_chain", "source_failures", "locations", "replan_failures", "series_notes")


def undecided(params: Params, submitted: float, estimate: DurationEstimate) -> Decision:
    """What an attempt stopped in its first fetch knows: when the job was submitted, and that nothing started."""
    return Decision(
        **_held_to(params, submitted, estimate, params.scheduler.rule, params.scheduler.mode),
        **dict.fromkeys(UNKNOWN),
        **dict.fromkeys(NOTHING, ()),
        expected_duration=estimate.seconds,
        reason="stopped during the first fetch of intensities, before any plan was made",
        replans=0,
    )


def write_decision(decision: Decision) -> None:
    """decision.json, then metrics/schedule.json: the numbers `dvc metrics` shows."""
    write_json(DECISION_JSON, decision.record())
    wait = decision.wait_seconds
    metrics = {
        "rule": decision.rule,
        "mode": decision.mode,
        "source": decision.source,
        "sources_failed": len(decision.source_failures),
        "clock": decision.clock,
        "interrupted": decision.interrupted,
        "wait_hours": None if wait is None else wait / 3600,
        "chunks": len(decision.chunks),
        "initial_intensity_g_per_kwh": decision.initial_intensity,
        "expected_mean_intensity_g_per_kwh": decision.expected_mean_intensity,
        "expected_saving_vs_now_pct": decision.expected_saving_vs_now_pct,
    }
    write_json(SCHEDULE_METRICS, metrics)


def read_decision() -> Decision:
    """The decision to run on. One that a stop left without a start is refused: there is nothing to follow."""
    try:
        decision = Decision.from_record(read_json(DECISION_JSON))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{DECISION_JSON}: not a decision wait-for-window wrote ({reason(exc)}): run wait-for-window again"
        ) from None
    if decision.interrupted:
        raise ArtifactError(f"{DECISION_JSON}: wait-for-window was interrupted before a start was chosen; run it again")
    return decision
