"""The train stage: one readable loop with exact gradient accumulation, mixed precision, checkpoints and energy.

Read it top to bottom: where the run sits on the clock, data, model, precision, the loop, then accounting.
"""

from __future__ import annotations

import random
import resource
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .accounting import emissions_kg, interval_intensity
from .artifacts import read_json, save_torch, write_csv, write_json
from .energy import EnergyMeter
from .errors import ArtifactError
from .layout import DATASET_FILE, DECISION_JSON, run_metrics, train_dir
from .model import SimpleCNN
from .params import Params, RunParams
from .schedule import load_horizon
from .series import IntensitySeries
from .timeutil import iso, parse_instant

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def clock_start(run_name: str, horizon: dict) -> tuple[float, str]:
    """Where the run starts on the pipeline clock, and why.

    The baseline is the carbon-unaware reference: it starts when the job was submitted. The optimized run
    starts where wait-for-window put it (simulated clock) or when it really started (real clock).
    """
    if run_name == "baseline":
        return parse_instant(horizon["now"]), "submission time (carbon-unaware: no waiting)"
    decision = read_json(DECISION_JSON)
    if horizon["clock"] == "simulated":
        return parse_instant(decision["start"]), f"scheduled start ({decision['rule']} rule, simulated clock)"
    return time.time(), "actual start after waiting (real clock)"


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ArtifactError("train.device is 'cuda' but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_precision(mixed: bool, device: torch.device) -> tuple[torch.dtype | None, str]:
    """FP16 with loss scaling on CUDA, bf16 autocast on CPUs that support it, fp32 otherwise."""
    if not mixed:
        return None, "fp32"
    if device.type == "cuda":
        return torch.float16, "fp16-autocast+gradscaler"
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16, "bf16-autocast"
    return None, "fp32 (mixed precision requested; this CPU has no bf16 support)"


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    return torch.Generator().manual_seed(seed)


def normalize(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


def accumulate_gradients(model, images, labels, group: torch.Tensor, batch_size: int, autocast, scaler) -> float:
    """Backpropagate one effective batch (`group` of sample indices) in micro-batches; return its summed loss.

    Each micro-batch's summed loss is divided by the size of the whole group, so the accumulated gradient is
    exactly the mean-loss gradient of the big batch, also for a short group at the end of an epoch.
    """
    total = 0.0
    for micro in group.split(batch_size):
        with autocast():
            logits = model(normalize(images[micro]))
        loss = F.cross_entropy(logits.float(), labels[micro], reduction="sum") / len(group)
        scaler.scale(loss).backward()
        total += loss.item() * len(group)
    return total


@torch.no_grad()
def evaluate(model, images, labels, batch_size: int) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        logits = model(normalize(images[start : start + batch_size]))
        target = labels[start : start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    return total_loss / len(labels), 100.0 * correct / len(labels)


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
            "method": "CUDA caching allocator: max_memory_allocated after reset_peak_memory_stats at run start",
        }
    return {
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "method": "process peak RSS (includes the Python/PyTorch runtime and the dataset, not only training)",
    }


def run_training(params: Params, run_name: str) -> dict:
    run: RunParams = params.run(run_name)
    out_dir = train_dir(run_name)
    out_dir.mkdir(parents=True, exist_ok=True)

    # -- where the run sits on the pipeline clock, and the intensities it will be charged
    horizon, series = load_horizon()
    start_on_clock, placement = clock_start(run_name, horizon)

    # -- data, as whole tensors on the device (no per-sample PIL, no DataLoader workers)
    generator = seed_everything(params.seed)
    device = pick_device(params.train.device)
    data = torch.load(DATASET_FILE, weights_only=True)
    pin = device.type == "cuda"
    train_x, train_y, test_x, test_y = (
        (data[key].pin_memory() if pin else data[key]).to(device, non_blocking=pin)
        for key in ("train_images", "train_labels", "test_images", "test_labels")
    )

    # -- model, optimizer, precision
    model = SimpleCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.train.learning_rate)
    steps = params.train.epochs * -(-len(train_y) // run.effective_batch_size)  # optimizer steps, same for any split
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=params.train.learning_rate, total_steps=steps)
        if params.train.lr_schedule == "onecycle"
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    )
    autocast_dtype, precision = pick_precision(run.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=autocast_dtype)) if autocast_dtype is not None else nullcontext
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # -- the loop: each optimizer step sees exactly one effective batch, including the short last one
    meter = EnergyMeter(out_dir, params.carbon.country_iso_code, params.energy.measure_power_secs)
    meter.start()
    wall_start = meter.started_at
    epochs = []
    samples = len(train_y)
    for epoch in range(1, params.train.epochs + 1):
        model.train()
        epoch_wall_start, epoch_loss = time.time(), 0.0
        order = torch.randperm(samples, generator=generator).to(device)
        for group in order.split(run.effective_batch_size):
            optimizer.zero_grad(set_to_none=True)
            epoch_loss += accumulate_gradients(model, train_x, train_y, group, run.batch_size, autocast, scaler)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        train_seconds_epoch = time.time() - epoch_wall_start
        test_loss, accuracy = evaluate(model, test_x, test_y, params.train.eval_batch_size)
        epoch_wall_end = time.time()
        epochs.append(
            {
                "epoch": epoch,
                "train_loss": epoch_loss / samples,
                "test_loss": test_loss,
                "test_accuracy": accuracy,
                "seconds": epoch_wall_end - epoch_wall_start,
                "samples_per_second": samples / train_seconds_epoch,
                "start": iso(start_on_clock + (epoch_wall_start - wall_start)),
                "end": iso(start_on_clock + (epoch_wall_end - wall_start)),
            }
        )
        save_checkpoint(out_dir / "checkpoint.pt", model, optimizer, scaler, scheduler, epoch, generator)
    report = meter.stop()
    train_seconds = time.time() - wall_start

    # -- artifacts and accounting
    save_torch(out_dir / "model.pt", model.state_dict())
    write_csv(out_dir / "epochs.csv", pd.DataFrame(epochs))
    intervals = energy_intervals(report, series, start_on_clock, wall_start)
    write_csv(out_dir / "energy_intervals.csv", intervals)
    summary = summarize(
        run_name, run, params, epochs, train_seconds, report, intervals, series, start_on_clock, placement, horizon
    )
    summary["training_metrics"]["train_samples"] = samples  # lets wait-for-window scale the next run's duration
    summary["memory_metrics"] = peak_memory(device)
    summary["device"] = device.type
    summary["precision"] = precision
    write_json(run_metrics(run_name), summary)
    return summary


def save_checkpoint(path: Path, model, optimizer, scaler, scheduler, epoch: int, generator: torch.Generator) -> None:
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "data_order_rng": generator.get_state(),
    }
    save_torch(path, state)


def energy_intervals(report, series: IntensitySeries, start_on_clock: float, wall_start: float) -> pd.DataFrame:
    """One row per CodeCarbon measurement, placed on the pipeline clock and charged at the intensity then."""
    columns = ["start", "end", "energy_kwh", "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "intensity_g_per_kwh", "emissions_kg"]
    if not report.known:
        return pd.DataFrame(columns=columns)
    starts = np.array([start_on_clock + (i.wall_start - wall_start) for i in report.intervals])
    ends = np.array([start_on_clock + (i.wall_end - wall_start) for i in report.intervals])
    energy = np.array([i.energy_kwh for i in report.intervals])
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
            "cpu_energy_kwh": [i.cpu_energy_kwh for i in report.intervals],
            "gpu_energy_kwh": [i.gpu_energy_kwh for i in report.intervals],
            "ram_energy_kwh": [i.ram_energy_kwh for i in report.intervals],
            "intensity_g_per_kwh": intensity,
            "emissions_kg": emissions_kg(energy, intensity),
        },
        columns=columns,
    )


def summarize(run_name, run, params, epochs, train_seconds, report, intervals, series, start_on_clock, placement, horizon) -> dict:
    last = epochs[-1]
    energy = float(intervals["energy_kwh"].sum()) if report.known else None
    emissions = float(intervals["emissions_kg"].sum()) if report.known else None
    tracked_seconds = (
        report.intervals[-1].wall_end - report.intervals[0].wall_start if report.known else None
    )
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
            "intensity_source_failures": horizon.get("source_failures", []),  # sources that failed before it served
            "energy_method": report.method,
            "energy_error": report.error,
            "codecarbon_static_average_emissions_kg": report.codecarbon_emissions_kg,
            "codecarbon_static_average_note": (
                f"CodeCarbon's own figure: energy x the {report.codecarbon_country} annual average intensity; "
                "not time-resolved, kept for reference only"
            ),
        },
        "scheduler_metrics": {
            "clock": horizon["clock"],
            "simulated_clock": horizon["clock"] == "simulated",
            "placement": placement,
            "start": iso(start_on_clock),
            "wait_seconds": start_on_clock - parse_instant(horizon["now"]),
            "initial_intensity_g_per_kwh": series.at(start_on_clock),
            "training_intensity_g_per_kwh": 1000 * emissions / energy if energy else None,
        },
        "batch_size": run.batch_size,
        "gradient_accumulation_steps": run.gradient_accumulation_steps,
        "effective_batch_size": run.effective_batch_size,
    }
