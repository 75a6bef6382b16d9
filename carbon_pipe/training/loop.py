"""The train stage: one readable loop with exact gradient accumulation, mixed precision, step checkpoints and energy.

Read `train` top to bottom: the job (one process, or one rank under torchrun), where the run sits on the clock,
data, model, precision, resuming, energy, the loop, then accounting. SIGTERM or SIGINT make the loop checkpoint
and stop after the current optimizer step; a SIGKILL loses at most the steps since the last checkpoint. Either way
the same command resumes the run, and on CPU the final model is byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psutil
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..artifacts import md5sum, save_torch, write_bytes, write_csv, write_json
from ..emissions.accounting import emissions_kg, interval_intensity
from ..emissions.meter import EnergyJournal, EnergyMeter
from ..errors import ArtifactError, TrainingStopped
from ..intensity.horizon import Horizon, read_horizon
from ..intensity.series import IntensitySeries
from ..layout import DATASET_FILE, resume_dir, run_metrics, train_dir
from ..params import Params, RunParams
from ..scheduling.decision import read_decision
from ..signals import stop_requests
from ..timeutil import iso, parse_instant
from . import distributed
from .model import build_model, check_fits
from .resume import ResumeFolder, capture_rng, fingerprint, restore_rng


@dataclass(frozen=True)
class Segment:
    """How much of the run one call trains, and where that sits on the pipeline clock.

    The default trains to the end. A caller that pauses the run (an interruptible plan, see pausing.py) passes a
    budget: the run checkpoints and raises TrainingStopped when it is spent (at once if it already is), and the
    next call resumes it, at the next `clock_start` it is given. `note` is kept with the segment in the run's
    segment log (e.g. which planned chunk it trains).
    """

    clock_start: float | None = None  # the earliest start; None: where the previous segment ended (real clock: now)
    until_step: int | None = None  # stop once the run has made this many optimizer steps
    max_seconds: float | None = None  # stop after this much wall time in this segment
    note: dict = field(default_factory=dict)


def clock_start(run_name: str, horizon: Horizon) -> tuple[float, str, bool]:
    """Where the run starts on the pipeline clock, why, and whether its later segments follow the wall clock.

    The baseline is the carbon-unaware reference: it starts when the job was submitted. The optimized run
    starts where wait-for-window put it (simulated clock) or when it really started (real clock). Only real
    starts follow the wall clock; simulated and counterfactual placements put segments back to back.
    """
    if run_name == "baseline":
        return horizon.submitted, "submission time (carbon-unaware: no waiting)", False
    decision = read_decision()
    if horizon.simulated:
        return decision.start, f"scheduled start ({decision.rule} rule, simulated clock)", False
    return time.time(), "actual start after waiting (real clock)", True


def resume_folder(params: Params, run_name: str, horizon: Horizon, world_size: int) -> ResumeFolder:
    """The run's resume folder, with the fingerprint of everything that decides its training state."""
    start_on_clock, _, follows_wall_clock = clock_start(run_name, horizon)
    return ResumeFolder(
        resume_dir(run_name),
        fingerprint(
            params={
                "seed": params.seed,
                "model": params.model.model_dump(by_alias=True),
                "train": params.train.model_dump(exclude={"checkpoint_every"}),
                "run": params.configuration(run_name).model_dump(),
            },
            dataset_md5=md5sum(DATASET_FILE),
            world_size=world_size,
            clock=iso(horizon.submitted if follows_wall_clock else start_on_clock),
        ),
    )


def saved_state(params: Params, run_name: str) -> dict | None:
    """The checkpoint a stopped attempt of this exact run left to resume from, or None."""
    horizon = read_horizon()
    return resume_folder(params, run_name, horizon, int(os.environ.get("WORLD_SIZE", "1"))).load()


def steps_per_epoch(samples: int, run: RunParams) -> int:
    """Optimizer steps in one epoch, the short last batch included (the same for any number of processes)."""
    return -(-samples // run.effective_batch_size)


def total_steps(params: Params, run_name: str) -> int:
    """Optimizer steps of the whole run, from the size of the prepared training split."""
    labels = torch.load(DATASET_FILE, weights_only=True, mmap=True)["train_labels"]
    return params.train.epochs * steps_per_epoch(len(labels), params.configuration(run_name))


def pick_precision(mixed: bool, device: torch.device) -> tuple[torch.dtype | None, str]:
    """FP16 with loss scaling on CUDA, bf16 autocast on CPUs that support it, fp32 otherwise."""
    if not mixed:
        return None, "fp32"
    if device.type == "cuda":
        return torch.float16, "fp16-autocast+gradscaler"
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16, "bf16-autocast"
    return None, "fp32 (mixed precision requested; this CPU has no bf16 support)"


def seed_everything(seed: int, rank: int = 0) -> torch.Generator:
    """Seed every RNG (per rank, so ranks draw different dropout masks); return the data-order generator (shared)."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    return torch.Generator().manual_seed(seed)


@dataclass
class DeviceData:
    """One split as whole uint8 tensors on the device; batches are normalised as they are taken."""

    images: torch.Tensor  # N, C, H, W
    labels: torch.Tensor
    mean: torch.Tensor  # 1, C, 1, 1
    std: torch.Tensor
    memory_format: torch.memory_format = torch.contiguous_format

    @classmethod
    def load(cls, dataset: dict, split: str, device: torch.device, memory_format: torch.memory_format) -> DeviceData:
        pin = device.type == "cuda"
        images, labels = (dataset[f"{split}_{key}"] for key in ("images", "labels"))
        images, labels = ((t.pin_memory() if pin else t).to(device, non_blocking=pin) for t in (images, labels))
        mean, std = (dataset[key].view(1, -1, 1, 1).to(device) for key in ("mean", "std"))
        return cls(images, labels, mean, std, memory_format)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        images = (self.images[index].float() / 255.0 - self.mean) / self.std
        return images.contiguous(memory_format=self.memory_format), self.labels[index]


def accumulate_gradients(
    model, data: DeviceData, shard: torch.Tensor, group_size: int, batch_size: int, autocast, scaler,
    world_size: int = 1,
) -> torch.Tensor:
    """Backpropagate this process's `shard` of one effective batch of `group_size` samples in micro-batches.

    Each micro-batch's summed loss is divided by the size of the whole effective batch, so the accumulated gradient
    is exactly the mean-loss gradient of the big batch, also for a short one at the end of an epoch. DDP averages
    the ranks' gradients, hence the factor world_size, and only the last micro-batch synchronises them. Returns
    the shard's summed loss as a device tensor, so the loop never waits for the GPU.
    """
    skip_sync = getattr(model, "no_sync", nullcontext)  # DDP's; a plain module has nothing to skip
    micro_batches = shard.split(batch_size)  # an empty shard gives one empty micro-batch: the rank still syncs
    total = torch.zeros((), dtype=torch.float64, device=shard.device)
    for index, micro in enumerate(micro_batches):
        with nullcontext() if index == len(micro_batches) - 1 else skip_sync():
            images, labels = data.batch(micro)
            with autocast():
                logits = model(images)
            summed = F.cross_entropy(logits.float(), labels, reduction="sum")
            scaler.scale(summed * world_size / group_size).backward()
        total += summed.detach()
    return total


@torch.no_grad()
def evaluate(model, data: DeviceData, batch_size: int, job: distributed.Job) -> tuple[float, float]:
    """Test loss and accuracy; under DDP each rank takes every world_size-th batch and the sums are combined."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=data.labels.device)  # summed loss, correct predictions
    for start in range(job.rank * batch_size, len(data), job.world_size * batch_size):
        images, target = data.batch(slice(start, start + batch_size))
        logits = model(images)
        totals[0] += F.cross_entropy(logits.float(), target, reduction="sum")
        totals[1] += (logits.argmax(1) == target).sum()
    loss, correct = job.sum_(totals).tolist()
    return loss / len(data), 100.0 * correct / len(data)


def run_training(params: Params, run_name: str, segment: Segment = Segment()) -> dict | None:
    """Train one configuration; return its summary on rank 0 (None on the other ranks of a torchrun job)."""
    job = distributed.start(params.train.device)
    try:
        return train(params, run_name, segment, job)
    finally:
        distributed.stop()


def train(params: Params, run_name: str, segment: Segment, job: distributed.Job) -> dict | None:
    run: RunParams = params.configuration(run_name)
    out_dir = train_dir(run_name)
    device = job.device

    # -- where the run sits on the pipeline clock, and the intensities it will be charged
    horizon = read_horizon()
    series = horizon.series
    start_on_clock, placement, follows_wall_clock = clock_start(run_name, horizon)

    # -- data, as whole uint8 tensors on the device (no per-sample PIL, no DataLoader workers)
    order_rng = seed_everything(params.seed, job.rank)
    dataset = torch.load(DATASET_FILE, weights_only=True)
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    train_data = DeviceData.load(dataset, "train", device, memory_format)
    test_data = DeviceData.load(dataset, "test", device, memory_format)
    samples, num_classes = len(train_data), len(dataset["classes"])

    # -- model (its initial weights come from the seed), optimizer, LR schedule, precision
    model = build_model(params.model.class_path, params.model.kwargs, tuple(train_data.images.shape[1:]), num_classes)
    model = model.to(device, memory_format=memory_format)
    check_fits(model, train_data.batch(slice(0, 2))[0], num_classes, params.model.class_path, dataset["dataset"])
    optimizer = torch.optim.Adam(model.parameters(), lr=params.train.learning_rate)
    epoch_steps = steps_per_epoch(samples, run)
    run_steps = params.train.epochs * epoch_steps
    lr_schedule = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=params.train.learning_rate, total_steps=run_steps)
        if params.train.lr_schedule == "onecycle"
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    )
    autocast_dtype, precision = pick_precision(run.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=autocast_dtype)) if autocast_dtype is not None else nullcontext
    )

    # -- resume from the latest checkpoint of this exact configuration, if an earlier attempt stopped or was killed
    resume = resume_folder(params, run_name, horizon, job.world_size)
    discarded = resume.claim() if job.is_main else False
    job.barrier()
    state = resume.load()
    step, epochs, epoch_seconds, epoch_start, seconds_before, segment_log = 0, [], 0.0, None, 0.0, []
    epoch_loss = torch.zeros((), dtype=torch.float64, device=device)  # this rank's summed loss so far this epoch
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        restore_rng(state["rng"][job.rank])
        order_rng.set_state(state["data_order_rng"])
        step, epochs, seconds_before = state["step"], state["epochs"], state["seconds"]
        epoch_seconds, epoch_start = state["epoch_seconds"], state["epoch_start"]
        segment_log = state.get("segment_log", [])  # a checkpoint from before segment logs has none
        epoch_loss += state["epoch_loss"] if job.is_main else 0.0  # saved as the sum over ranks
    resumed_at_step = step
    if stop_reason([], segment, step, 0.0, step >= run_steps) is not None:  # a spent budget: no training, no segment
        raise TrainingStopped(f"train {run_name}: nothing to do, already at step {step} of {run_steps}", step)
    trained = torch.compile(model) if run.compile else model
    if job.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(trained, device_ids=device_ids)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before_training_mb = psutil.Process().memory_info().rss / 2**20

    # -- energy: one tracker per node; each interval goes to the node's journal, on the clock, as it is measured
    earlier = EnergyJournal.read(resume.journal(job.node)) if job.tracks_energy else []
    segment_index = int(job.max(max((row["segment"] for row in earlier), default=-1))) + 1
    ended = [row["clock_end"] for row in earlier] + [state["clock"] if state else start_on_clock]
    previous_end = job.max(max(ended))
    if segment.clock_start is not None:  # never before the previous segment ended: a run does not overlap itself
        segment_clock = float(max(segment.clock_start, previous_end))  # plain: checkpoints hold no numpy scalars
    elif follows_wall_clock and segment_index > 0:
        segment_clock = time.time()
    else:  # back to back after the previous segment (the time between attempts is not on this clock)
        segment_clock = previous_end
    meter = None
    wall_origin = time.time()

    def clock_now(wall: float | None = None) -> float:  # this segment's wall time, placed on the pipeline clock
        return segment_clock + ((time.time() if wall is None else wall) - wall_origin)

    if job.tracks_energy:
        journal = EnergyJournal(resume.journal(job.node), segment_index, job.node, clock_now)
        meter = EnergyMeter(
            resume.folder,  # CodeCarbon appends a row per segment there; copied whole (atomically) at the end
            params.energy.country_iso_code,
            params.energy.measure_power_secs,
            on_interval=journal.append,
            tracking_mode="machine" if job.distributed else "process",  # under torchrun it measures the whole node
            output_file="emissions.csv" if job.node == 0 else f"emissions-node{job.node}.csv",
        )
        wall_origin = time.time()
        meter.start(wall_origin)
        if meter.error:
            journal.note_error(meter.error)

    # Where each segment sat on the clock and which steps it trained (a SIGKILLed one: up to its last checkpoint).
    this_segment = {"segment": segment_index, **segment.note, "clock_start": iso(segment_clock), "first_step": step}

    def snapshot() -> dict:
        """The full training state; every rank calls it (it gathers), rank 0 saves it."""
        return {
            "fingerprint": resume.fingerprint,
            "step": step,
            "total_steps": run_steps,
            "epochs": epochs,
            "epoch_loss": job.sum_(epoch_loss.clone()).item(),
            "epoch_seconds": epoch_seconds,
            "epoch_start": epoch_start,
            "data_order_rng": order_state,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "lr_schedule": lr_schedule.state_dict(),
            "rng": job.gather(capture_rng()),
            "seconds": seconds_before + (time.time() - wall_origin),
            "clock": clock_now(),
            "segment_log": segment_log + [{**this_segment, "clock_end": iso(clock_now()), "last_step": step}],
        }

    # -- the loop: each optimizer step sees exactly one effective batch, including the short last one
    order_state = order_rng.get_state()  # the data order's position: the generator before this epoch's permutation
    report = None
    with stop_requests() as signals, progress_bar(job.is_main) as bar:
        total_samples = params.train.epochs * samples
        task = bar.add_task("train", total=total_samples, completed=min(step * run.effective_batch_size, total_samples))
        try:
            while len(epochs) < params.train.epochs:
                epoch = len(epochs) + 1
                order_state = order_rng.get_state()
                order = torch.randperm(samples, generator=order_rng).to(device)
                done = step - (epoch - 1) * epoch_steps  # steps already made in this epoch (resumed mid-epoch)
                if done == 0:
                    epoch_loss.zero_()
                    epoch_seconds, epoch_start = 0.0, iso(clock_now())
                trained.train()
                part_start = time.time()
                bar.update(task, description=f"{run_name} epoch {epoch}/{params.train.epochs}")
                for group in order.split(run.effective_batch_size)[done:]:
                    optimizer.zero_grad(set_to_none=True)
                    shard = group[job.rank :: job.world_size]
                    epoch_loss += accumulate_gradients(
                        trained, train_data, shard, len(group), run.batch_size, autocast, scaler, job.world_size
                    )
                    scaler.step(optimizer)
                    scaler.update()
                    lr_schedule.step()
                    step += 1
                    bar.update(task, advance=len(group))
                    reason = stop_reason(signals, segment, step, time.time() - wall_origin, step == run_steps)
                    stopping = job.any(reason is not None)
                    if stopping or step % params.train.checkpoint_every == 0:
                        epoch_seconds += time.time() - part_start
                        part_start = time.time()
                        state = snapshot()
                        if job.is_main:
                            resume.save(state)
                    if stopping:
                        raise TrainingStopped(
                            f"train {run_name}: {reason or 'another rank stopped'} after step {step} of {run_steps}; "
                            f"checkpoint in {resume.folder}/, run the same command to resume",
                            step,
                            int(job.max(signals[0] if signals else 0)) or None,  # a signal to one rank stops all
                        )
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # count the queued GPU work in this epoch's time
                epoch_seconds += time.time() - part_start
                eval_start = time.time()
                test_loss, accuracy = evaluate(model, test_data, params.train.eval_batch_size, job)
                epochs.append(
                    {
                        "epoch": epoch,
                        "train_loss": job.sum_(epoch_loss.clone()).item() / samples,
                        "test_loss": test_loss,
                        "test_accuracy": accuracy,
                        "seconds": epoch_seconds + (time.time() - eval_start),
                        "samples_per_second": samples / epoch_seconds,
                        "start": epoch_start,
                        "end": iso(clock_now()),
                    }
                )
                if job.is_main:
                    bar.console.print(
                        f"{run_name} epoch {epoch}: loss {epochs[-1]['train_loss']:.4f}, accuracy {accuracy:.2f} %, "
                        f"{epochs[-1]['samples_per_second']:.0f} samples/s"
                    )
                order_state = order_rng.get_state()
                state = snapshot()
                if job.is_main:
                    resume.save(state)
        finally:
            if meter is not None:  # also on a stop or an error: the energy spent so far is journalled
                report = meter.stop()
                if report.error:
                    journal.note_error(report.error)

    # -- accounting over every segment of the run, all nodes together; rank 0 writes the artifacts
    node_rows = job.gather(EnergyJournal.read(resume.journal(job.node)) if job.tracks_energy else [])
    node_errors = job.gather(EnergyJournal.read_errors(resume.journal(job.node)) if job.tracks_energy else [])
    memory = job.gather(peak_memory(device, rss_before_training_mb))
    if not job.is_main:
        return None
    rows = [row for rows in node_rows for row in rows]
    errors = [error for errors in node_errors for error in errors]
    intervals = energy_intervals([] if errors else rows, series)  # may refuse (past the horizon): before any write
    summary = summarize(
        run_name, run, epochs, state["seconds"], intervals, errors, report, series, start_on_clock, placement, horizon
    )
    summary["training_metrics"].update(
        train_samples=samples,  # lets wait-for-window scale the next run's duration
        segments=segment_index + 1,  # that recorded energy: one killed before its first measurement leaves no trace
        segment_log=measured_segment_log(state["segment_log"], rows),
        resumed_at_step=resumed_at_step if segment_index else None,
        discarded_stale_checkpoint=discarded,
    )
    summary["memory_metrics"] = combine_memory(memory)
    summary.update(
        device=device.type,
        precision=precision,
        world_size=job.world_size,
        dataset=dataset["dataset"],
        model_class=params.model.class_path,
        compile=run.compile,
        channels_last=run.channels_last,
    )
    save_torch(out_dir / "model.pt", model.state_dict())
    save_torch(out_dir / "checkpoint.pt", state)
    write_csv(out_dir / "epochs.csv", pd.DataFrame(epochs))
    write_csv(out_dir / "energy_intervals.csv", intervals)
    for log in resume.folder.glob("emissions*.csv"):  # CodeCarbon's own log, every segment's row
        write_bytes(out_dir / log.name, log.read_bytes())
    write_json(run_metrics(run_name), summary)
    resume.remove()  # finished: nothing to resume, so a later run (other params or not) starts afresh
    return summary


def measured_segment_log(segment_log: list[dict], rows: list[dict]) -> list[dict]:
    """Each segment ends at its last measurement: CodeCarbon's final one comes after the segment's last checkpoint."""
    ends: dict[int, float] = {}
    for row in rows:
        ends[row["segment"]] = max(ends.get(row["segment"], row["clock_end"]), row["clock_end"])
    return [
        {**entry, "clock_end": iso(max(parse_instant(entry["clock_end"]), ends.get(entry["segment"], -np.inf)))}
        for entry in segment_log
    ]


def stop_reason(signals: list[int], segment: Segment, step: int, segment_seconds: float, last: bool) -> str | None:
    if signals:
        return f"stopped by {signal.Signals(signals[0]).name}"
    if last:  # only the final evaluation is left: a budget does not split it off into a segment of its own
        return None
    if segment.until_step is not None and step >= segment.until_step:
        return "paused as planned (step budget)"
    if segment.max_seconds is not None and segment_seconds >= segment.max_seconds:
        return "paused as planned (time budget)"
    return None


class SamplesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} samples/s" if task.speed else "- samples/s", style="progress.data.speed")


def progress_bar(enabled: bool) -> Progress:
    """A live bar on a terminal; elsewhere (dvc repro's log, tests) only its final state, and no refresh thread."""
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SamplesPerSecond(), TimeRemainingColumn()
    )
    console = Console(stderr=True)
    return Progress(
        *columns, console=console, disable=not enabled, auto_refresh=console.is_terminal, refresh_per_second=4
    )


def peak_memory(device: torch.device, rss_before_training_mb: float) -> dict:
    if device.type == "cuda":
        return {
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
            "method": "CUDA caching allocator: max_memory_allocated after reset_peak_memory_stats at run start",
        }
    return {
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_training_mb": rss_before_training_mb,
        "method": (
            "process peak RSS (includes the Python/PyTorch runtime and the dataset, not only training; "
            "rss_before_training_mb is what was resident before the loop)"
        ),
    }


def combine_memory(per_rank: list[dict]) -> dict:
    """The largest rank's figures; under torchrun also every rank's peak."""
    largest = dict(max(per_rank, key=lambda memory: memory["peak_memory_mb"]))
    if len(per_rank) > 1:
        largest["per_rank_peak_memory_mb"] = [memory["peak_memory_mb"] for memory in per_rank]
        largest["method"] += "; the largest over ranks"
    return largest


INTERVAL_COLUMNS = [
    "start", "end", "energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "intensity_g_per_kwh",
    "emissions_kg", "segment", "node",
]


def energy_intervals(rows: list[dict], series: IntensitySeries) -> pd.DataFrame:
    """One row per measurement of every segment and node, on the pipeline clock, charged the intensity then."""
    if not rows:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    rows = sorted(rows, key=lambda row: (row["clock_start"], row["node"]))
    starts = np.array([row["clock_start"] for row in rows])
    ends = np.array([row["clock_end"] for row in rows])
    energy = np.array([row["energy_kwh"] for row in rows])
    if ends.max() > series.end:
        raise ArtifactError(
            f"the run ends at {iso(ends.max())}, after the intensity horizon ({iso(series.end)}): raise carbon.horizon"
        )
    intensity = interval_intensity(series, starts, ends)
    return pd.DataFrame(
        {
            "start": [iso(t) for t in starts],
            "end": [iso(t) for t in ends],
            "energy_kwh": energy,
            "cpu_energy_kwh": [row["cpu_energy_kwh"] for row in rows],
            "gpu_energy_kwh": [row["gpu_energy_kwh"] for row in rows],
            "ram_energy_kwh": [row["ram_energy_kwh"] for row in rows],
            "intensity_g_per_kwh": intensity,
            "emissions_kg": emissions_kg(energy, intensity),
            "segment": [row["segment"] for row in rows],
            "node": [row["node"] for row in rows],
        },
        columns=INTERVAL_COLUMNS,
    )


def summarize(
    run_name: str, run: RunParams, epochs: list[dict], train_seconds: float, intervals: pd.DataFrame,
    energy_errors: list[str], report, series: IntensitySeries, start_on_clock: float, placement: str, horizon: Horizon,
) -> dict:
    last = epochs[-1]
    known = len(intervals) > 0 and not energy_errors
    energy = float(intervals["energy_kwh"].sum()) if known else None
    emissions = float(intervals["emissions_kg"].sum()) if known else None
    tracked_seconds = None
    if known:  # time under measurement; nodes measure side by side, so their overlapping intervals count once
        durations = intervals["end"].map(parse_instant) - intervals["start"].map(parse_instant)
        tracked_seconds = float(durations.sum()) / intervals["node"].nunique()
    # CodeCarbon's static figure is its country factor x energy: the factor from this segment, the energy of all
    segment_energy = sum(interval.energy_kwh for interval in report.intervals) if report is not None else 0.0
    static_factor = None
    if known and report.codecarbon_emissions_kg and segment_energy:
        static_factor = report.codecarbon_emissions_kg / segment_energy
    return {
        "run": run_name,
        "training_metrics": {
            "final_accuracy": last["test_accuracy"],
            "final_loss": last["train_loss"],
            "test_loss": last["test_loss"],
            "epochs": len(epochs),
            "total_time_seconds": train_seconds,
            "samples_per_second": sum(e["samples_per_second"] for e in epochs) / len(epochs),
        },
        "carbon_metrics": {
            "total_emissions_kg": emissions,
            "energy_consumed_kwh": energy,
            "avg_power_watts": energy * 3.6e6 / tracked_seconds if energy is not None and tracked_seconds else None,
            "mean_intensity_g_per_kwh": 1000 * emissions / energy if energy else None,
            "intensity_source": series.source,
            "intensity_source_failures": list(horizon.source_failures),  # sources that failed before it served
            "energy_method": report.method if known and report is not None else "unknown",
            "energy_error": "; ".join(energy_errors) or (None if known else "CodeCarbon recorded no measurement"),
            "codecarbon_static_average_emissions_kg": static_factor * energy if static_factor is not None else None,
            "codecarbon_static_average_note": (
                f"CodeCarbon's {report.codecarbon_country if report else ''} annual-average intensity x the run's "
                "energy over all its segments and nodes; not time-resolved, kept for reference only"
            ),
        },
        "scheduler_metrics": {
            "clock": horizon.clock,
            "simulated_clock": horizon.simulated,
            "placement": placement,
            "start": iso(start_on_clock),
            "wait_seconds": start_on_clock - horizon.submitted,
            "initial_intensity_g_per_kwh": series.at(start_on_clock),
            "training_intensity_g_per_kwh": 1000 * emissions / energy if energy else None,
        },
        "batch_size": run.batch_size,
        "gradient_accumulation_steps": run.gradient_accumulation_steps,
        "effective_batch_size": run.effective_batch_size,
    }
