"""metrics/<run>.json: what a finished run (`train` or `carbon-pipe run`) did, in sections: training, carbon,
scheduler, memory, SCI and (train-optimized) its profile. One model, one writer (`write_run_summary`) and one reader
(`read_run_summary`), which compare, the report and the duration estimate use; no other module reads its keys.

Every method field is a short identifier; docs/reference/artifacts.md and docs/accounting.md say what each means.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from ..artifacts import ArtifactModel, Count, Flag, Instant, Number, read_model, write_model
from ..intensity.horizon import FailedSource
from ..layout import run_metrics
from ..timeutil import parse_instant


def _time_text(text: str) -> str:
    parse_instant(text)  # a ValueError if it is not one
    return text


TimeText = Annotated[str, AfterValidator(_time_text)]  # an ISO-8601 time, kept as written (to the microsecond)


class Section(ArtifactModel):
    """A section of a run's summary: a key this model does not know is refused (a writer's slip, or another
    version's file), so the file and the model cannot drift apart."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """As the file holds it: the optional parts a run has not (chunks, a profile, a command) are left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class PauseInterruption(ArtifactModel):
    """A signal that stopped a pause between chunks: the resume folder's pause-interruptions.json holds a list of
    them until the run resumes, then the next chunk's segment does."""

    replans: Count = Field(description="re-plans made during the pause before the signal came")
    replan_failures: list[str] = Field(description="re-plans that failed, and why")
    at: TimeText = Field(description="when the signal stopped the pause (UTC)")
    paused_since: TimeText = Field(description="when the pause began (UTC)")
    signal: str = Field(description="its name: SIGINT, SIGTERM")
    planned_start: Optional[TimeText] = Field(description="the start of the plan being waited for, if there was one")
    after_step: Count = Field(description="the steps done before the pause")


class ChunkNote(Section):
    """Which planned chunk a segment ran and how the pause before it went: a plan followed in chunks only. Only
    the keys it was given are written (a segment of no chunk has none)."""

    LEADING: ClassVar[tuple[str, ...]] = ()  # keys the file holds before the chunk's

    chunk: Optional[Count] = Field(None, description="the planned chunk (1: the first)")
    planned_start: Optional[TimeText] = Field(None, description="its planned start (UTC)")
    planned_end: Optional[TimeText] = Field(None, description="its planned end (UTC)")
    until_step: Optional[Count] = Field(None, description="simulated clock: it ran to this step (null: to the end)")
    max_seconds: Optional[Number] = Field(None, description="real clock: its time budget (s; null: to the end)")
    past_deadline: Optional[Flag] = Field(None, description="real clock: no time left to pause, the rest ran at once")
    replans: Optional[Count] = Field(None, description="real clock: re-plans in the pause before it")
    replan_failures: Optional[list[str]] = Field(None, description="re-plans in that pause that failed, and why")
    interruptions: Optional[list[PauseInterruption]] = Field(None, description="signals that stopped that pause")

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        given = [key for key in data if key in self.model_fields_set]
        leading = [key for key in self.LEADING if key in given]
        return {key: data[key] for key in [*leading, *(key for key in given if key not in leading)]}

    def note(self) -> dict[str, Any]:
        """The chunk's keys it was given, as fields."""
        return {name: getattr(self, name) for name in ChunkNote.model_fields if name in self.model_fields_set}


class SegmentEntry(ChunkNote):
    """One segment of a run (training/segments.py): where it sat on the pipeline clock and which steps it ran (a
    command's steps: whole seconds of its run time), after its number and the chunk it ran."""

    LEADING: ClassVar[tuple[str, ...]] = ("segment",)

    segment: Count = Field(description="the segment's number in the run (0: the first)")
    clock_start: TimeText = Field(description="where it started on the pipeline clock (UTC)")
    first_step: Count = Field(description="the steps done before it")
    clock_end: TimeText = Field(description="where it ended (UTC): its last measurement or checkpoint")
    last_step: Count = Field(description="the steps done when it ended")

    @classmethod
    def of(
        cls, segment: int, note: ChunkNote, clock_start: str, first_step: int, clock_end: str, last_step: int
    ) -> SegmentEntry:
        return cls.model_validate(
            {
                "segment": segment, **note.note(), "clock_start": clock_start, "first_step": first_step,
                "clock_end": clock_end, "last_step": last_step,
            }
        )

    def ending(self, clock_end: str) -> SegmentEntry:
        """The entry ending at `clock_end` instead."""
        return type(self).model_validate({**self.model_dump(), "clock_end": clock_end})


class ChunkRun(ChunkNote):
    """A planned chunk as it ran: its plan (as its first segment noted it), its span on the clock and its steps (a
    chunk stopped and resumed spans several segments)."""

    start: TimeText = Field(description="where its first segment started (UTC)")
    first_step: Count = Field(description="the steps done before it")
    segments: Count = Field(description="the segments it ran in")
    end: TimeText = Field(description="where its last segment ended (UTC)")
    last_step: Count = Field(description="the steps done when it ended")
    steps: Count = Field(description="the steps it ran")

    @classmethod
    def spanning(cls, entries: list[SegmentEntry]) -> ChunkRun:
        first, last = entries[0], entries[-1]
        return cls.model_validate(
            {
                **first.note(), "start": first.clock_start, "first_step": first.first_step,
                "segments": len(entries), "end": last.clock_end, "last_step": last.last_step,
                "steps": last.last_step - first.first_step,
            }
        )


class ChunkPause(Section):
    """A pause between two chunks as it happened."""

    after_chunk: Count = Field(description="the chunk before it")
    start: TimeText = Field(description="where that chunk ended (UTC)")
    end: TimeText = Field(description="where the next one started (UTC)")
    seconds: Number = Field(description="its length (s)")
    slept: Flag = Field(description="real clock: slept (the hardware held); simulated: recorded, not slept")


class TrainingMetrics(Section):
    """How training went: the last epoch's figures, throughput, and the segments it ran in."""

    final_accuracy: Optional[Number] = Field(description="test accuracy after the last epoch (%); null: not reported")
    final_loss: Optional[Number] = Field(description="mean training loss of the last epoch")
    test_loss: Optional[Number] = Field(description="mean test loss after the last epoch")
    epochs: Optional[Count] = Field(description="epochs trained")
    total_time_seconds: Number = Field(description="training time over all segments, pauses excluded (s)")
    samples_per_second: Optional[Number] = Field(description="training throughput, mean over epochs (samples/s)")
    train_samples: Optional[Count] = Field(description="training samples in one epoch")
    segments: Count = Field(description="segments that recorded energy (a resumed or chunked run has several)")
    segment_log: list[SegmentEntry] = Field(description="each segment: its clock span and steps")
    resumed_at_step: Optional[Count] = Field(description="the step a resumed run went on from (null: not resumed)")
    discarded_stale_checkpoint: Flag = Field(description="a checkpoint of other params or code was thrown away")


class CarbonMetrics(Section):
    """Energy and emissions over every measured interval, each charged the grid intensity of its time."""

    total_emissions_kg: Optional[Number] = Field(description="emissions over every interval (kg CO2e); null: unknown")
    energy_consumed_kwh: Optional[Number] = Field(description="energy over every interval (kWh)")
    avg_power_watts: Optional[Number] = Field(description="mean power over the measured time (W)")
    mean_intensity_g_per_kwh: Optional[Number] = Field(description="emissions / energy (g/kWh)")
    intensity_source: str = Field(description="the intensity source that served the horizon")
    intensity_source_failures: list[FailedSource] = Field(description="sources that failed before it served")
    measured_seconds: Optional[Number] = Field(description="time the meter covered, all phases (s)")
    by_phase: dict[str, dict[str, float]] = Field(
        description="energy_kwh, emissions_kg and seconds of each phase: training, profile, idle"
    )
    energy_method: str = Field(
        description="how energy was measured: process-tree-model, rapl, cpu-load-model, constant-tdp (+nvml with a "
        "GPU), or unknown"
    )
    codecarbon_energy_kwh: Optional[Number] = Field(description="what CodeCarbon alone measured (kWh), for reference")
    energy_error: Optional[str] = Field(description="why energy is unknown (null: it is known)")
    codecarbon_static_average_emissions_kg: Optional[Number] = Field(
        description="CodeCarbon's country annual-average intensity x the run's energy (kg), not time-resolved"
    )
    codecarbon_country: str = Field(description="the country CodeCarbon's annual average is of")


class SchedulerMetrics(Section):
    """Where the run sat on the pipeline clock, and (a plan followed in chunks) the chunks as they ran."""

    clock: Literal["simulated", "real"] = Field(description="the pipeline clock")
    simulated_clock: Flag = Field(description="clock is simulated: waits computed, not slept")
    placement: str = Field(description="where the run sat: submission or scheduled, and by which rule")
    start: Instant = Field(description="when the run started on the pipeline clock (UTC)")
    wait_seconds: Number = Field(description="start - submission (s)")
    initial_intensity_g_per_kwh: Number = Field(description="grid intensity at the start (g/kWh)")
    training_intensity_g_per_kwh: Optional[Number] = Field(description="emissions / energy over the run (g/kWh)")
    planned_chunks: Optional[Count] = Field(None, description="chunks planned (a plan followed in chunks)")
    chunks: Optional[list[ChunkRun]] = Field(None, description="the chunks as they ran")
    pauses: Optional[list[ChunkPause]] = Field(None, description="the pauses between chunks")
    paused_seconds: Optional[Number] = Field(None, description="time paused between chunks (s)")
    chunk_mapping: Optional[str] = Field(
        None,
        description="how the chunks map onto the work: step-shares (train, simulated clock: by shares of the "
        "optimizer steps), run-time-shares (a command, simulated clock: by shares of its run time), time-budgets "
        "(real clock: each chunk until its planned end, re-planning between chunks)",
    )


class SciMetrics(Section):
    """Software Carbon Intensity (ISO/IEC 21031:2024): (E x I + M) per R, R one run and 1,000 samples."""

    per_run_g: Optional[Number] = Field(description="SCI per run: (E x I + M) (g CO2e)")
    per_1000_samples_g: Optional[Number] = Field(description="SCI per 1,000 training samples (g CO2e)")
    operational_g: Optional[Number] = Field(description="E x I (g CO2e)")
    embodied_g: Optional[Number] = Field(description="M: the devices' embodied share for the held time (g CO2e)")
    energy_kwh: Optional[Number] = Field(description="E (kWh)")
    held_idle_energy_kwh: Optional[Number] = Field(description="E's share of hardware held idle in pauses (kWh)")
    held_seconds: Optional[Number] = Field(description="time the hardware was held (s)")
    samples: Optional[Count] = Field(description="training samples over the run (R's unit); null: not reported")
    devices: Count = Field(description="devices (nodes) reserved")
    embodied_kg_per_device: Number = Field(description="energy.embodied_kg (kg CO2e)")
    lifetime_years: Number = Field(description="energy.lifetime_years (years)")
    held_idle: Literal["not-held", "measured"] = Field(
        description="not-held: simulated clock, pauses recorded, not slept; measured: real clock, the meter ran "
        "through every pause"
    )
    method: Literal["sci-iso-21031"] = Field(description="SCI = (E x I + M) per R, location-based I")


class MemoryMetrics(Section):
    """Peak memory while training, and how it was measured."""

    peak_memory_mb: Optional[Number] = Field(description="peak memory (MB); null: not measured")
    peak_reserved_mb: Optional[Number] = Field(None, description="CUDA: peak reserved by the caching allocator (MB)")
    rss_before_training_mb: Optional[Number] = Field(None, description="CPU: resident before the loop (MB)")
    per_rank_peak_memory_mb: Optional[list[float]] = Field(None, description="torchrun: each rank's peak (MB)")
    method: str = Field(
        description="cuda-allocator-peak, peak-rss-since-training, peak-rss-since-start, command-tree-rss, "
        "reported-by-command, or not-measured"
    )


class EscapedProcess(Section):
    """A process the command left running outside its process group, measured while it ran, then ended."""

    pid: Count = Field(description="its process id")
    name: str = Field(description="its name (? if it could not be read)")


class Launch(Section):
    """How one launch of the command (one segment) ended; kept in the resume folder's progress.json until the run
    finishes, then in its summary."""

    segment: Count = Field(description="the segment it ran")
    seconds: Number = Field(description="its run time, to its exit (s)")
    cpu_seconds: Number = Field(description="the CPU time of its process tree, as the kernel counted it (s)")
    exit_code: Optional[Count] = Field(description="its exit status (null: ended by a signal)")
    signal: Optional[str] = Field(description="the signal that ended it, if one did")
    stopped_for_pause: Flag = Field(description="sent SIGTERM because its segment's time budget was spent")
    killed_after_grace: Flag = Field(description="SIGKILLed after outliving command.grace_period after that SIGTERM")
    passed_on: Optional[str] = Field(description="the SIGINT or SIGTERM carbon-pipe received and passed on to it")
    escaped_ended: list[EscapedProcess] = Field(description="processes it left outside its group, ended after it")


class CommandMetrics(Section):
    """`carbon-pipe run`: the command, how each launch ended, and what it reported."""

    argv: list[str] = Field(description="the command run (credentials withheld)")
    status: Literal["finished", "failed"] = Field(description="how the command ended")
    exit_code: int = Field(description="the command's exit status")
    launches: list[Launch] = Field(description="how each launch (segment) ended")
    escaped_ended: list[EscapedProcess] = Field(description="processes that left the tree, ended with the command")
    metrics_file_written: Flag = Field(description="the command wrote $CARBON_PIPE_METRICS")
    metrics_file_error: Optional[str] = Field(description="what was wrong with it (a failed command)")
    not_reported: list[str] = Field(description="the contract's keys the command left out (null in this summary)")
    extra: Optional[dict[str, Any]] = Field(description="what the command reported beyond the contract")


class Candidate(Section):
    """One configuration auto considered: its fields, what it measured, and whether it was chosen."""

    name: str = Field(description="the candidate's name (batch x accumulation-precision-memory format)")
    batch_size: Count = Field(description="samples per micro-step")
    gradient_accumulation_steps: Count = Field(description="micro-steps per optimizer step")
    mixed_precision: Union[Flag, str] = Field(description="as optimized.mixed_precision takes it")
    compile: Flag = Field(description="torch.compile")
    channels_last: Flag = Field(description="channels-last memory format")
    precision: Optional[str] = Field(description="the precision it trained in; null: not profiled")
    peak_memory_mb: Number = Field(description="its peak memory in a few steps (MB)")
    within_budget: Flag = Field(description="within optimized.memory_budget_mb")
    j_per_sample: Optional[Number] = Field(description="energy per sample (J); null: not profiled")
    j_per_sample_ci95: Optional[list[Optional[Number]]] = Field(description="its 95 % interval")
    ratio: Optional[Number] = Field(description="energy per sample over the baseline's")
    ratio_ci95: Optional[list[Optional[Number]]] = Field(description="its 95 % interval")
    chosen: Flag = Field(description="the one the run trains")


class AutoChoice(Section):
    """optimized.choose auto: the candidates, what each measured, the one chosen and why."""

    memory_budget_mb: Optional[Number] = Field(description="optimized.memory_budget_mb; null: none")
    memory_method: str = Field(description="how peak memory was measured")
    chosen: str = Field(description="the chosen candidate's name")
    configuration: dict[str, Any] = Field(description="its fields, as the optimized section takes them")
    why: str = Field(description="why it was chosen")
    candidates: list[Candidate]


class ProfileInterval(Section):
    value: Number = Field(description="the point estimate")
    ci95: list[Optional[Number]] = Field(description="its 95 % interval [low, high]; null: unbounded")


class ProfileStopping(Section):
    planned_processes: Count = Field(description="the most processes the profile would run")
    settle_within: Number = Field(description="no difference is settled inside 1 +- this fraction")
    reason: str = Field(description="settled, budget spent, or every planned process run")
    budget_joules: Optional[Number] = Field(None, description="its energy budget (J)")
    spent_joules: Optional[Number] = Field(None, description="what the whole profile spent, start-up included (J)")


class ProfileSection(Section):
    """train-optimized: its energy profile's verdict, ratio and cost, or why it was not profiled (then `skipped` is
    the only key). The bursts are in the file named by `file`."""

    skipped: Optional[str] = Field(None, description="why the run was not profiled (then the only key)")
    choice: Optional[AutoChoice] = Field(None, description="optimized.choose auto: the candidates and why")
    discarded_stale_checkpoint: Flag = Field(False, description="claiming the resume folder threw stale state away")
    segments: Optional[list[Count]] = Field(None, description="the run's segments that measured it")
    clock_start: Optional[Instant] = Field(None, description="when its first process started on the pipeline clock")
    clock_end: Optional[Instant] = Field(None, description="when its last process ended")
    trained: Optional[str] = Field(None, description="the configuration the run trains")
    ratio: Optional[Number] = Field(None, description="its energy per sample over the baseline's")
    ratio_ci95: Optional[list[Optional[Number]]] = Field(None, description="the ratio's 95 % interval")
    verdict: Optional[str] = Field(None, description="less, more, or no measurable difference")
    verdict_text: Optional[str] = Field(None, description="the verdict in words, with how it was measured")
    energy_kwh: Optional[Number] = Field(None, description="the run's meter over the profile segment (kWh)")
    emissions_kg: Optional[Number] = Field(None, description="its emissions (kg CO2e)")
    bursts_energy_kwh: Optional[Number] = Field(None, description="the profile's own counter, bursts only (kWh)")
    counter: Optional[str] = Field(None, description="the profile's energy counter, in words")
    processes: Optional[Count] = Field(None, description="fresh worker processes measured")
    rounds: Optional[Count] = Field(None, description="measured rounds in each process")
    warmup_rounds: Optional[Count] = Field(None, description="warm-up rounds in each process")
    stopping: Optional[ProfileStopping] = Field(None, description="why the profile stopped, and its budget")
    baseline_j_per_sample: Optional[ProfileInterval] = Field(None, description="the baseline's energy per sample (J)")
    trained_j_per_sample: Optional[ProfileInterval] = Field(None, description="the trained one's (J)")
    file: Optional[str] = Field(None, description="the profile with its bursts")


class RunSummary(Section):
    """What a finished run did: training, carbon, scheduler, SCI, memory and (train-optimized) profile sections."""

    run: str = Field(description="the run's name")
    training_metrics: TrainingMetrics
    carbon_metrics: CarbonMetrics
    scheduler_metrics: SchedulerMetrics
    batch_size: Optional[Count] = Field(description="samples per optimizer micro-step")
    gradient_accumulation_steps: Optional[Count] = Field(description="micro-steps per optimizer step")
    effective_batch_size: Optional[Count] = Field(description="batch_size x gradient_accumulation_steps")
    sci: SciMetrics
    memory_metrics: MemoryMetrics
    device: Optional[str] = Field(description="cpu or cuda")
    precision: Optional[str] = Field(description="the precision trained in (and why, where it differs)")
    world_size: Optional[Count] = Field(description="processes (torchrun ranks)")
    dataset: Optional[str] = Field(description="the dataset trained on")
    model_class: Optional[str] = Field(description="module:Class of the model")
    compile: Optional[Flag] = Field(description="torch.compile was used")
    channels_last: Optional[Flag] = Field(description="channels-last memory format was used")
    allocator: str = Field(description="the allocator the process ran with, in words; not-set for a command run")
    profile: Optional[ProfileSection] = Field(None, description="train-optimized: its profile, or why it has none")
    command: Optional[CommandMetrics] = Field(None, description="carbon-pipe run: the command and how it ended")

    def completed(
        self, chunks: Optional[dict[str, Any]] = None, profile: Optional[ProfileSection] = None
    ) -> RunSummary:
        """The summary with what only the stage knows once the run finished: the chunks as they ran (a plan
        followed in chunks) and the profile (train-optimized). A new summary: a written one is never edited."""
        changes: dict[str, Any] = {}
        if chunks is not None:
            changes["scheduler_metrics"] = _with(self.scheduler_metrics, chunks)
        if profile is not None:
            changes["profile"] = profile
            if profile.discarded_stale_checkpoint:
                changes["training_metrics"] = _with(self.training_metrics, {"discarded_stale_checkpoint": True})
        return _with(self, changes)


def _with(record: Section, changes: dict[str, Any]) -> Any:
    """`record` with `changes`, validated again; what was left out stays left out."""
    kept = {name: getattr(record, name) for name in record.model_fields_set}
    return type(record).model_validate({**kept, **changes})


def write_run_summary(summary: RunSummary) -> None:
    write_model(run_metrics(summary.run), summary)


def read_run_summary(run_name: str) -> RunSummary:
    """metrics/<run>.json; one that is not what train wrote (edited, cut short, `{}`, another version's) is one
    line naming it."""
    return read_model(
        run_metrics(run_name), RunSummary, "a run summary train wrote", f"run train --run {run_name} again"
    )
