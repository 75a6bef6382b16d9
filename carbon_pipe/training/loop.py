"""The training loop: one configuration, from its latest checkpoint to the end of a segment, with its energy.

Read `train` top to bottom: setup (seeds, data, the model and how it steps), resuming, where the segment sits on
the clock and its energy meter, the loop (`Training.epochs`: an optimizer step per effective batch, the test set
at each epoch's end, checkpoints), then the accounting. SIGTERM or SIGINT make the loop checkpoint and stop after
the current optimizer step; a SIGKILL loses at most the steps since the last checkpoint. Either way the same
command resumes the run, and on CPU the final model is byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import torch

from ..config.params import Params
from ..config.training import RunParams
from ..emissions.meter import EnergyJournal, MeterReading
from ..errors import TrainingDiverged, TrainingStopped
from ..layout import DATASET_FILE, train_dir
from ..signals import stop_requests
from ..timeutil import iso
from . import distributed
from .allocator import steady_allocator
from .outputs import (
    MemoryUse,
    carbon_metrics,
    combine_memory,
    energy_intervals,
    measured_segment_log,
    scheduler_metrics,
    sci_metrics,
    training_metrics,
    write_outputs,
)
from .placement import Metering, Placement, SegmentClock, place_segment
from .progress import ProgressBar
from .resume import ResumeFolder, RunState, logged_segments, resume_folder
from .run_summary import RunSummary, SegmentEntry, write_run_summary
from .segments import Segment, stop_reason
from .trainer import Splits, Trainer, build_trainer, evaluate, read_dataset, seed_everything, steps_per_epoch


def run_training(
    params: Params, run_name: str, placement: Placement, segment: Segment = Segment()
) -> RunSummary | None:
    """Train one configuration (all of it, or the one segment given) in its own process group, holding its folder
    (a second trainer of the run is refused), and write its summary; return the summary on rank 0 once the run
    finished (None on the other ranks of a torchrun job)."""
    with distributed.running(params.train.device, train_dir(run_name), f"train {run_name}") as job:
        summary = train(params, run_name, segment, job, placement)
        if summary is not None:
            write_run_summary(summary)
    return summary


def total_steps(params: Params, run_name: str) -> int:
    """Optimizer steps of the whole run, from the size of the prepared training split."""
    labels = read_dataset(DATASET_FILE, mmap=True)["train_labels"]
    return params.train.epochs * steps_per_epoch(len(labels), params.configuration(run_name))


def train(
    params: Params, run_name: str, segment: Segment, job: distributed.Job, placement: Placement
) -> RunSummary | None:
    """Train `run_name` in `segment`. Raises TrainingStopped when the segment ends before the run does (its budget
    is spent, a signal came); once the run finished, writes its artifacts and returns its summary (rank 0)."""
    config, run_start = params.configuration(run_name), placement.run_start()

    # -- setup: a steady heap, every RNG seeded, the data as whole uint8 tensors on the device, the model and its step
    steady_allocator(params.train.steady_allocator)
    order_rng = seed_everything(params.seed, job.rank)
    data = Splits.load(DATASET_FILE, job.device, config.channels_last)
    trainer = build_trainer(params.model, params.train, config, data, job)
    steps_of_run = params.train.epochs * steps_per_epoch(len(data.train), config)

    # -- resume from the latest checkpoint of this exact configuration, if an earlier attempt stopped or was killed
    resume = resume_folder(params, run_name, placement, job.world_size)
    discarded = resume.claim() if job.is_main else False
    job.barrier()
    saved = resume.load()
    state = RunState.resumed(saved, steps_of_run, trainer, order_rng, job)
    if stop_reason([], segment, state.step, 0.0, state.step >= steps_of_run) is not None:  # a spent budget: no segment
        raise TrainingStopped(
            f"train {run_name}: nothing to do, already at step {state.step} of {steps_of_run}", state.step
        )
    trainer.wrap(config.compile)
    memory = MemoryUse(job.device)

    # -- this segment on the pipeline clock, and its energy, journalled there as it is measured
    clock = place_segment(placement, segment, run_start, state.clock, resume, job)
    metering = Metering(params.energy, job, resume, clock)
    metering.start()

    # -- the loop, its progress shown, SIGTERM and SIGINT turned into a checkpoint and a stop
    training = Training(
        params, run_name, config, segment, job, data, trainer, state, order_rng, resume, clock, saved or {}, discarded
    )
    bar = ProgressBar(job.is_main, params.train.epochs * len(data.train), state.step * config.effective_batch_size)
    with stop_requests() as signals, bar:
        try:
            training.epochs(signals, bar)
        finally:
            reading = metering.stop()

    # -- accounting over every segment of the run, all nodes together; rank 0 writes the artifacts
    summary = account(training, placement, run_start, reading, memory)
    if summary is not None:
        resume.remove()  # finished: nothing to resume, so a later run (other params or not) starts afresh
    return summary


@dataclass
class Training:
    """One segment of a run in progress: what the loop reads, and the state it moves on."""

    params: Params
    run_name: str
    config: RunParams
    segment: Segment
    job: distributed.Job
    data: Splits
    trainer: Trainer
    state: RunState
    order_rng: torch.Generator
    resume: ResumeFolder
    clock: SegmentClock
    saved: dict  # the last checkpoint
    discarded: bool  # whether a stale checkpoint (of other params, data or placement) was thrown away

    def __post_init__(self) -> None:
        self.resumed_at_step = self.state.step
        # The first step whose loss was NaN or infinite (0: none yet), kept on the device: no sync per step.
        self.first_non_finite = torch.zeros((), dtype=torch.int64, device=self.job.device)

    def epochs(self, signals: list[int], bar: ProgressBar) -> None:
        """Each optimizer step trains on exactly one effective batch, the short last one of an epoch included."""
        params, state, trainer, samples = self.params, self.state, self.trainer, len(self.data.train)
        steps_in_epoch = steps_per_epoch(samples, self.config)
        while len(state.epochs) < params.train.epochs:
            epoch = len(state.epochs) + 1
            state.order_state = self.order_rng.get_state()  # the data order's position: before this epoch's shuffle
            order = torch.randperm(samples, generator=self.order_rng).to(self.job.device)
            done = state.step - (epoch - 1) * steps_in_epoch  # steps already made in this epoch (resumed mid-epoch)
            if done == 0:
                state.epoch_loss.zero_()
                state.epoch_seconds, state.epoch_start = 0.0, iso(self.clock.now())
            trainer.trained.train()
            part_start = time.time()
            bar.describe(f"{self.run_name} epoch {epoch}/{params.train.epochs}")
            for group in order.split(self.config.effective_batch_size)[done:]:
                loss = trainer.step(self.data.train, group)
                state.epoch_loss += loss
                state.step += 1
                self.first_non_finite = torch.where(
                    (self.first_non_finite == 0) & ~torch.isfinite(loss), state.step, self.first_non_finite
                )
                bar.advance(len(group))
                seconds = time.time() - self.clock.wall_origin
                reason = stop_reason(signals, self.segment, state.step, seconds, state.step == state.total_steps)
                stopping = self.job.any(reason is not None)
                if stopping or state.step % params.train.checkpoint_every == 0:
                    state.epoch_seconds += time.time() - part_start
                    part_start = time.time()
                    self.check_finite()
                    self.checkpoint()
                if stopping:
                    raise self.stopped(reason, signals)
            if self.job.device.type == "cuda":
                torch.cuda.synchronize(self.job.device)  # count the queued GPU work in this epoch's time
            state.epoch_seconds += time.time() - part_start
            self.check_finite()
            self.evaluate(epoch, bar)
            state.order_state = self.order_rng.get_state()
            self.checkpoint()

    def evaluate(self, epoch: int, bar: ProgressBar) -> None:
        """The test set at the epoch's end, and the epoch's record (and its line in the log)."""
        state, samples = self.state, len(self.data.train)
        eval_start = time.time()
        test_loss, accuracy = evaluate(self.trainer.model, self.data.test, self.params.train.eval_batch_size, self.job)
        record = {
            "epoch": epoch,
            "train_loss": self.job.sum_(state.epoch_loss.clone()).item() / samples,
            "test_loss": test_loss,
            "test_accuracy": accuracy,
            "seconds": state.epoch_seconds + (time.time() - eval_start),
            "samples_per_second": samples / state.epoch_seconds,
            "start": state.epoch_start,
            "end": iso(self.clock.now()),
        }
        state.epochs.append(record)
        bar.print(
            f"{self.run_name} epoch {epoch}: loss {record['train_loss']:.4f}, accuracy {accuracy:.2f} %, "
            f"{record['samples_per_second']:.0f} samples/s"
        )

    def check_finite(self) -> None:
        """Where the loop syncs anyway (a checkpoint, an epoch's end): a NaN or infinite loss since the last check
        stops the run before that state is saved, evaluated or reported. Every rank calls it (the earliest step of
        any rank counts)."""
        step = -self.job.max(-float(self.first_non_finite.item() or math.inf))
        if math.isinf(step):
            return
        params, config = self.params, self.config
        precision = ", or mixed_precision: false" if config.mixed_precision else ""
        raise TrainingDiverged(
            f"train {self.run_name}: the training loss is not finite (NaN or infinite) at step {int(step)} of "
            f"{self.state.total_steps}: the training diverged; try a lower train.learning_rate (now "
            f"{params.train.learning_rate:g}){precision}; no model or metrics were written"
        )

    def checkpoint(self) -> None:
        """Every rank takes part (the state is gathered); rank 0 writes it. The segment log says where this segment
        sat on the clock and which steps it trained (a SIGKILLed one: up to its last checkpoint)."""
        clock, now = self.clock, self.clock.now()
        entry = SegmentEntry.of(
            clock.index, self.segment.note, iso(clock.start), self.resumed_at_step, iso(now), self.state.step
        )
        self.saved = self.state.snapshot(self.resume.fingerprint, self.trainer, self.job, now, clock.wall_origin, entry)
        if self.job.is_main:
            self.resume.save(self.saved)

    def stopped(self, reason: Optional[str], signals: list[int]) -> TrainingStopped:
        step, steps = self.state.step, self.state.total_steps
        return TrainingStopped(
            f"train {self.run_name}: {reason or 'another rank stopped'} after step {step} of {steps}; "
            f"checkpoint in {self.resume.folder}/, run the same command to resume",
            step,
            int(self.job.max(signals[0] if signals else 0)) or None,  # a signal to one rank stops all
        )


def account(
    training: Training, placement: Placement, run_start: float, reading: Optional[MeterReading], memory: MemoryUse
) -> RunSummary | None:
    """The energy of every segment and node charged on the clock; rank 0 writes the artifacts, returns the summary.
    The intervals may be refused (past the horizon): before anything is written."""
    job, journal, horizon = training.job, training.resume.journal(training.job.node), placement.horizon
    node_rows = job.gather(EnergyJournal.read(journal) if job.tracks_energy else [])
    node_errors = job.gather(EnergyJournal.read_errors(journal) if job.tracks_energy else [])
    peaks = job.gather(memory.peak())
    if not job.is_main:
        return None
    rows = [row for rows in node_rows for row in rows]
    errors = [error for errors in node_errors for error in errors]
    intervals = energy_intervals([] if errors else rows, horizon.series)
    carbon = carbon_metrics(intervals, errors, reading, horizon)
    progress = training_metrics(
        training.state.epochs,
        training.saved["seconds"],
        train_samples=len(training.data.train),  # lets wait-for-window scale the next run's duration
        segments=training.clock.index + 1,  # that recorded energy: one killed before its first measurement leaves none
        segment_log=measured_segment_log(logged_segments(training.saved), rows),
        resumed_at_step=training.resumed_at_step if training.clock.index else None,
        discarded_stale_checkpoint=training.discarded,
    )
    samples = len(training.data.train) * training.params.train.epochs
    nodes = max(1, intervals["node"].nunique())
    config = training.config
    summary = RunSummary(
        run=training.run_name,
        training_metrics=progress,
        carbon_metrics=carbon,
        scheduler_metrics=scheduler_metrics(horizon, run_start, placement.why, carbon),
        batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        effective_batch_size=config.effective_batch_size,
        sci=sci_metrics(carbon, training.params.energy, samples, nodes, horizon.simulated),
        memory_metrics=combine_memory(peaks),
        device=job.device.type,
        precision=training.trainer.precision,
        world_size=job.world_size,
        dataset=training.data.name,
        model_class=training.params.model.class_path,
        compile=config.compile,
        channels_last=config.channels_last,
        allocator=steady_allocator(training.params.train.steady_allocator),
    )
    write_outputs(
        training.run_name, training.trainer.model, training.saved, training.state.epochs, intervals, training.resume
    )
    return summary
