"""The decision wait-for-window hands to train-optimized and compare: when (and where) the job runs, and why.

One writer (`write_decision`: decision.json and its flat summary metrics/schedule.json) and one reader
(`read_decision`, which refuses a decision a stop left without a start); no other module reads its keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import ConfigDict, Field, computed_field

from ..artifacts import ArtifactModel, Count, Flag, Instant, Number, read_model, write_model
from ..config.params import Params
from ..errors import ArtifactError
from ..intensity.horizon import FailedSource, Horizon
from ..layout import DECISION_JSON, SCHEDULE_METRICS
from ..timeutil import iso
from .planner import Chunk

if TYPE_CHECKING:
    from .duration import DurationEstimate
    from .wait_loop import Waited

PER_KWH = "expected_mean_intensity_g_per_kwh"


class PlannedChunk(ArtifactModel):
    """One chunk of the plan: [start, end) and the mean intensity expected over it."""

    start: Instant = Field(description="when the chunk starts (UTC)")
    end: Instant = Field(description="when the chunk ends (UTC)")
    mean_intensity: Number = Field(alias=PER_KWH, description="mean grid intensity expected over the chunk (g/kWh)")

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.start, self.end, self.mean_intensity)


class Location(ArtifactModel):
    """One place carbon.alternatives made the wait consider, and its best start there."""

    source: str = Field(description="the intensity source")
    region: str = Field(description="its region or zone")
    start: Instant = Field(description="the best start there (UTC)")
    expected_mean_intensity: Number = Field(alias=PER_KWH, description="mean intensity expected from its start (g/kWh)")
    now_mean_intensity: Number = Field(alias="now_mean_intensity_g_per_kwh",
                                       description="mean intensity starting at submission there (g/kWh)")
    chosen: Flag = Field(description="the place the run goes to")


class WaitAttempt(ArtifactModel):
    """One attempt at waiting for the job: when it started, its last plan, and what stopped it."""

    model_config = ConfigDict(extra="forbid")

    started: Instant = Field(description="when it started (UTC)")
    planned_start: Optional[Instant] = Field(None, description="the start its last plan chose (UTC)")
    last_plan: Optional[Instant] = Field(None, description="when it made that plan (UTC)")
    stopped_by: Optional[str] = Field(None, description="the signal that stopped it")
    stopped_at: Optional[Instant] = Field(None, description="when that signal came (UTC)")


class ResumedWait(ArtifactModel):
    """A wait done in several attempts (a stop or a kill, then a rerun): when the job was first submitted, and the
    attempts before the last (scheduling/wait_resume.py)."""

    model_config = ConfigDict(extra="forbid")

    first_submitted: Instant = Field(description="when the first attempt submitted the job (UTC)")
    attempts: Count = Field(description="attempts, the last one included")
    earlier_attempts: list[WaitAttempt] = Field(description="the attempts before the last")
    state_file: str = Field(description="the file that kept the wait's state between attempts")


class Decision(ArtifactModel):
    """decision.json: when (and where) the job runs, how that was planned, and how the wait went."""

    horizon: Horizon = Field(description="the horizon planned on (horizon.json's record; no source if none served)")
    rule: str = Field(description="the planning rule (scheduler.rule, or `queue` for a queue slot)")
    mode: Literal["flexible", "interruptible"] = Field(description="scheduler.mode the plan was made in")
    start: Optional[Instant] = Field(description="the chosen start (UTC); null: stopped before a start was chosen")
    expected_end: Optional[Instant] = Field(description="when the planned run is expected to end (UTC)")
    initial_intensity: Optional[Number] = Field(
        alias="initial_intensity_g_per_kwh", description="grid intensity at submission (g/kWh)"
    )
    expected_mean_intensity: Optional[Number] = Field(
        alias=PER_KWH, description="mean intensity expected over the planned chunks (g/kWh)"
    )
    now_mean_intensity: Optional[Number] = Field(
        alias="now_mean_intensity_g_per_kwh", description="mean intensity over the same length from submission (g/kWh)"
    )
    expected_saving_vs_now_pct: Optional[Number] = Field(description="expected intensity saving against now (%)")
    expected_duration: Number = Field(alias="expected_duration_seconds", description="the job's expected run time (s)")
    duration_source: str = Field(description="where the duration came from: params, estimated, fallback, queue")
    duration_basis: str = Field(description="how the duration was obtained, in words")
    max_wait: Number = Field(alias="max_wait_seconds", description="scheduler.max_wait (s)")
    min_chunk: Optional[Number] = Field(
        alias="min_chunk_seconds", description="scheduler.min_chunk (s); null where the mode does not use it"
    )
    threshold: Optional[Number] = Field(
        alias="threshold_g_per_kwh", description="scheduler.threshold (g/kWh); null where the rule does not use it"
    )
    min_saving_pct: Optional[Number] = Field(
        description="scheduler.min_saving_pct (%); null where the rule does not use it"
    )
    planned: list[PlannedChunk] = Field(
        alias="chunks", description="the planned chunks in order (one for a flexible plan; what was planned at a stop)"
    )
    reason: str = Field(description="why this start, in words")
    fallback: Flag = Field(description="carbon.fallback: whether a failed source fell back to the next")
    locations: list[Location] = Field(description="every place considered, the chosen one marked `chosen`")
    replans: Count = Field(description="how often the wait re-planned (real clock)")
    replan_failures: list[str] = Field(description="re-plans that failed, and why")
    signal: Optional[str] = Field(None, description="the signal that stopped the wait (null: not stopped)")
    resumed_wait: Optional[ResumedWait] = Field(None, description="the earlier attempts of a resumed wait")

    @computed_field(description="seconds from submission to the start (s)")  # type: ignore[prop-decorator]
    @property
    def wait_seconds(self) -> Optional[float]:
        return None if self.start is None else self.start - self.submitted

    @computed_field(description="whether the wait was slept (real clock) rather than computed")  # type: ignore[prop-decorator]
    @property
    def slept(self) -> bool:
        return self.clock == "real"

    @computed_field(description="whether a stop came before a start was chosen")  # type: ignore[prop-decorator]
    @property
    def interrupted(self) -> bool:
        return self.start is None

    @computed_field(description="the latest start allowed: submission + max_wait (UTC)")  # type: ignore[prop-decorator]
    @property
    def latest_start(self) -> Instant:
        return self.submitted + self.max_wait

    @property
    def submitted(self) -> float:
        """When the job was submitted: the first attempt's, after a resumed wait."""
        return self.horizon.submitted

    @property
    def clock(self) -> str:
        return self.horizon.clock

    @property
    def source(self) -> Optional[str]:
        return self.horizon.source

    @property
    def region(self) -> Optional[str]:
        return self.horizon.region

    @property
    def source_failures(self) -> list[FailedSource]:
        return self.horizon.source_failures

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(planned.chunk for planned in self.planned)

    @property
    def deadline(self) -> float:
        """When all the work must be done: the latest start plus the planned duration (interruptible plans)."""
        return self.latest_start + self.expected_duration

    @property
    def chosen_place(self) -> int:
        """Which place was chosen: 0 the configured sources, k the k-th of carbon.alternatives."""
        return next((index for index, place in enumerate(self.locations) if place.chosen), 0)

    def line(self) -> str:
        """The decision in one line, for stderr."""
        fell_back = "".join(f"; fell back: {failure.error}" for failure in self.source_failures)
        return (
            f"wait-for-window: {self.source} {self.region}, {self.mode} {self.rule}, {self.clock} clock: "
            f"start {iso(self.start)} after {self.wait_seconds / 3600:.2f} h in {len(self.planned)} chunk(s) "
            f"at {self.expected_mean_intensity:.1f} g/kWh (now {self.now_mean_intensity:.1f}; "
            f"{self.expected_saving_vs_now_pct:.1f} % lower){fell_back}"
        )


def planned_chunks(chunks: tuple[Chunk, ...]) -> list[PlannedChunk]:
    return [PlannedChunk(start=chunk.start, end=chunk.end, mean_intensity=chunk.mean_intensity) for chunk in chunks]


def _held_to(params: Params, estimate: DurationEstimate, rule: str, mode: str) -> dict[str, Any]:
    """What every decision records of the job and the params it was planned under (the rule's own knobs, None for
    those it does not use)."""
    scheduler = params.scheduler
    return {
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
    failures = tuple(FailedSource(**failure.to_dict()) for failure in outlook.failures)
    horizon = Horizon.of(submitted, params.scheduler.clock, series, outlook.fetched.chain, failures)
    return Decision(
        **_held_to(params, estimate, plan.rule, plan.mode),
        horizon=horizon,
        start=started,
        expected_end=None if started is None else plan.end,
        initial_intensity=series.at(submitted),
        expected_mean_intensity=plan.expected_mean_intensity,
        now_mean_intensity=now_mean,
        expected_saving_vs_now_pct=100.0 * (1 - plan.expected_mean_intensity / now_mean) if now_mean > 0 else 0.0,
        expected_duration=plan.duration,
        planned=planned_chunks(plan.chunks),
        reason=plan.reason,
        locations=list(outlook.locations),
        replans=waited.replans,
        replan_failures=list(waited.replan_failures),
    )


# What a wait stopped in its first fetch does not know: no plan, no start, no source.
UNKNOWN = ("start", "expected_end", "initial_intensity", "expected_mean_intensity", "now_mean_intensity")
UNKNOWN += ("expected_saving_vs_now_pct",)


def undecided(params: Params, submitted: float, estimate: DurationEstimate) -> Decision:
    """What an attempt stopped in its first fetch knows: when the job was submitted, and that nothing started."""
    horizon = Horizon(
        source=None,
        region=None,
        clock=params.scheduler.clock,
        submitted=submitted,
        series_notes=[],
        source_chain=[],
        source_failures=[],
    )
    return Decision(
        **_held_to(params, estimate, params.scheduler.rule, params.scheduler.mode),
        **dict.fromkeys(UNKNOWN),
        horizon=horizon,
        expected_duration=estimate.seconds,
        planned=[],
        reason="stopped during the first fetch of intensities, before any plan was made",
        locations=[],
        replans=0,
        replan_failures=[],
    )


class ScheduleMetrics(ArtifactModel):
    """metrics/schedule.json: the decision's numbers, flat, for `dvc metrics show`."""

    rule: str = Field(description="the planning rule")
    mode: str = Field(description="flexible or interruptible")
    source: Optional[str] = Field(description="the intensity source that served (null: none yet)")
    sources_failed: Count = Field(description="sources that failed before one served")
    clock: str = Field(description="simulated or real")
    interrupted: Flag = Field(description="a stop came before a start was chosen")
    wait_hours: Optional[Number] = Field(description="start - submission (h)")
    chunks: Count = Field(description="chunks planned")
    initial_intensity_g_per_kwh: Optional[Number] = Field(description="grid intensity at submission (g/kWh)")
    expected_mean_intensity_g_per_kwh: Optional[Number] = Field(description="expected over the chunks (g/kWh)")
    expected_saving_vs_now_pct: Optional[Number] = Field(description="expected saving against now (%)")


def write_decision(decision: Decision) -> None:
    """decision.json, then metrics/schedule.json: the numbers `dvc metrics` shows."""
    write_model(DECISION_JSON, decision)
    wait = decision.wait_seconds
    metrics = ScheduleMetrics(
        rule=decision.rule,
        mode=decision.mode,
        source=decision.source,
        sources_failed=len(decision.source_failures),
        clock=decision.clock,
        interrupted=decision.interrupted,
        wait_hours=None if wait is None else wait / 3600,
        chunks=len(decision.planned),
        initial_intensity_g_per_kwh=decision.initial_intensity,
        expected_mean_intensity_g_per_kwh=decision.expected_mean_intensity,
        expected_saving_vs_now_pct=decision.expected_saving_vs_now_pct,
    )
    write_model(SCHEDULE_METRICS, metrics)


def read_decision() -> Decision:
    """The decision to run on. One that a stop left without a start is refused: there is nothing to follow."""
    decision = read_model(DECISION_JSON, Decision, "a decision wait-for-window wrote", "run wait-for-window again")
    if decision.interrupted:
        raise ArtifactError(f"{DECISION_JSON}: wait-for-window was interrupted before a start was chosen; run it again")
    return decision
