"""A run's summary is one typed record: written whole, read back equal, completed into a new record (never edited),
and a file that is not one (edited, another version's) is one line naming it and what to run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbon_pipe.artifacts import FROM_FILE, json_text
from carbon_pipe.errors import ArtifactError
from carbon_pipe.layout import run_metrics
from carbon_pipe.training.run_summary import (
    CarbonMetrics,
    ChunkNote,
    ChunkPause,
    ChunkRun,
    MemoryMetrics,
    ProfileSection,
    RunSummary,
    SchedulerMetrics,
    SciMetrics,
    SegmentEntry,
    TrainingMetrics,
    read_run_summary,
    write_run_summary,
)

START = 1736964000.0  # 2025-01-15T18:00:00Z
ROOT = Path(__file__).resolve().parents[2]

# Recorded by an interruptible run on the real clock: its second chunk, after a pause a SIGTERM stopped once; the
# first chunk of a recorded plan as it ran; the pause after it.
RECORDED = {
    "segment entry": (SegmentEntry, """{
  "segment": 3,
  "chunk": 2,
  "planned_start": "2025-01-15T22:00:00.000000Z",
  "planned_end": "2025-01-15T23:00:00.000000Z",
  "max_seconds": null,
  "replans": 1,
  "replan_failures": [],
  "interruptions": [
    {
      "replans": 0,
      "replan_failures": [],
      "at": "2025-01-15T19:00:00.123456Z",
      "paused_since": "2025-01-15T18:30:00.000001Z",
      "signal": "SIGTERM",
      "planned_start": null,
      "after_step": 40
    }
  ],
  "clock_start": "2025-01-15T22:00:00.000017Z",
  "first_step": 40,
  "clock_end": "2025-01-15T22:03:24.492264Z",
  "last_step": 94
}"""),
    "chunk as run": (ChunkRun, """{
  "chunk": 1,
  "planned_start": "2025-01-16T03:00:00.000000Z",
  "planned_end": "2025-01-16T04:00:00.000000Z",
  "until_step": 1407,
  "start": "2025-01-16T03:00:12.263603Z",
  "first_step": 0,
  "segments": 2,
  "end": "2025-01-16T03:02:01.100001Z",
  "last_step": 1407,
  "steps": 1407
}"""),
    "pause": (ChunkPause, """{
  "after_chunk": 1,
  "start": "2025-01-16T03:02:01.100001Z",
  "end": "2025-01-16T05:00:00.000000Z",
  "seconds": 7078.899999,
  "slept": false
}"""),
}


def summary(run: str = "baseline") -> RunSummary:
    carbon = CarbonMetrics(
        total_emissions_kg=1.5e-4, energy_consumed_kwh=3.4e-4, avg_power_watts=8.1, mean_intensity_g_per_kwh=449.5,
        intensity_source="mock", intensity_source_failures=[], measured_seconds=150.0,
        by_phase={"training": {"energy_kwh": 3.4e-4, "emissions_kg": 1.5e-4, "seconds": 150.0}},
        energy_method="process-tree-model", codecarbon_energy_kwh=9e-4, energy_error=None,
        codecarbon_static_average_emissions_kg=2e-4, codecarbon_country="GBR",
    )
    sci = SciMetrics(
        per_run_g=1.3, per_1000_samples_g=0.007, operational_g=0.15, embodied_g=1.15, energy_kwh=3.4e-4,
        held_idle_energy_kwh=0.0, held_seconds=150.0, samples=180000, devices=1, embodied_kg_per_device=1000.0,
        lifetime_years=4.0, held_idle="not-held", method="sci-iso-21031",
    )
    training = TrainingMetrics(
        final_accuracy=99.3, final_loss=0.02, test_loss=0.02, epochs=3, total_time_seconds=150.0,
        samples_per_second=1200.0, train_samples=60000, segments=1,
        segment_log=[
            SegmentEntry(segment=0, clock_start="2025-01-15T18:00:00.000000Z", first_step=0,
                         clock_end="2025-01-15T18:02:30.000000Z", last_step=2814)
        ],
        resumed_at_step=None, discarded_stale_checkpoint=False,
    )
    scheduled = SchedulerMetrics(
        clock="simulated", simulated_clock=True, placement="submission time", start=START, wait_seconds=0.0,
        initial_intensity_g_per_kwh=449.5, training_intensity_g_per_kwh=449.5,
    )
    return RunSummary(
        run=run, training_metrics=training, carbon_metrics=carbon, scheduler_metrics=scheduled, batch_size=16,
        gradient_accumulation_steps=4, effective_batch_size=64, sci=sci,
        memory_metrics=MemoryMetrics(peak_memory_mb=1176.4, rss_before_training_mb=798.4,
                                     method="peak-rss-since-training"),
        device="cpu", precision="fp32", world_size=1, dataset="mnist", model_class="m:M", compile=False,
        channels_last=False, allocator="glibc malloc pinned",
    )


def test_a_summary_is_read_back_as_it_was_written(workspace):
    written = summary()
    write_run_summary(written)
    on_disk = json.loads(run_metrics("baseline").read_text())
    assert on_disk["scheduler_metrics"]["start"] == "2025-01-15T18:00:00.000000Z"
    assert "chunks" not in on_disk["scheduler_metrics"] and "profile" not in on_disk and "command" not in on_disk
    assert "peak_reserved_mb" not in on_disk["memory_metrics"]  # a CPU run has no CUDA figures, not nulls
    assert read_run_summary("baseline") == written


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_recorded_segment_chunk_or_pause_round_trips_byte_for_byte(name):
    model, text = RECORDED[name]
    entry = model.model_validate(json.loads(text), context=FROM_FILE)
    assert json_text(entry.to_json()) == text  # the same keys, values and order


def test_a_segment_of_no_chunk_holds_none_of_a_chunks_keys():
    entry = SegmentEntry.of(0, ChunkNote(), "2025-01-15T18:00:00.000000Z", 0, "2025-01-15T18:02:37.645173Z", 2814)
    assert list(entry.to_json()) == ["segment", "clock_start", "first_step", "clock_end", "last_step"]
    assert entry.chunk is None and entry.ending("2025-01-15T18:03:00.000000Z").clock_end.startswith("2025-01-15T18:03")


@pytest.mark.parametrize("run", ["baseline", "optimized"])
def test_the_committed_run_summaries_round_trip_byte_for_byte(run):
    text = (ROOT / "metrics" / f"{run}.json").read_text()
    assert json_text(RunSummary.model_validate(json.loads(text), context=FROM_FILE).to_json()) + "\n" == text


def test_completing_a_summary_makes_a_new_one_with_the_chunks_and_profile():
    first = summary("optimized")
    chunks = {"planned_chunks": 2, "chunks": [], "pauses": [], "paused_seconds": 60.0, "chunk_mapping": "step-shares"}
    profile = ProfileSection(trained="optimized", ratio=1.2, discarded_stale_checkpoint=True)
    done = first.completed(chunks=chunks, profile=profile)
    assert first.scheduler_metrics.paused_seconds is None and first.profile is None  # untouched
    assert done.scheduler_metrics.paused_seconds == 60.0 and done.scheduler_metrics.chunk_mapping == "step-shares"
    assert done.training_metrics.discarded_stale_checkpoint  # the profile's claim threw stale state away
    record = done.to_json()
    assert record["profile"]["ratio"] == 1.2 and record["scheduler_metrics"]["planned_chunks"] == 2


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda record: {}, "(run is missing)"),
        (lambda record: [record], "(a JSON list, not an object)"),
        (lambda record: {**record, "precision": 32}, "(precision is 32, not text)"),
        (lambda record: record["training_metrics"].update(epochs="3") or record, "training_metrics.epochs is '3', not"),
        (lambda record: record["scheduler_metrics"].update(start=5) or record,
         "scheduler_metrics.start is 5, not a time"),
        (lambda record: record["carbon_metrics"].update(energy_method="x", method_note="an older key") or record,
         "carbon_metrics.method_note is not a key of this file"),
        (lambda record: record["sci"].update(held_idle="a sentence") or record,
         "sci.held_idle is 'a sentence', not 'not-held' or 'measured'"),
        (lambda record: record["training_metrics"]["segment_log"][0].pop("clock_end") and record,
         "training_metrics.segment_log.0.clock_end is missing"),
    ],
    ids=["empty", "a-list", "text-for-text", "a-number-as-text", "a-time-as-a-number", "an-unknown-key",
         "an-old-sentence", "a-segment-cut-short"],
)
def test_a_summary_that_is_not_one_is_one_line_naming_the_file(workspace, damage, says):
    write_run_summary(summary())
    path = run_metrics("baseline")
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    with pytest.raises(ArtifactError) as refused:
        read_run_summary("baseline")
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{path}: not a run summary train wrote")
    assert says in line and line.endswith("run train --run baseline again"), line
