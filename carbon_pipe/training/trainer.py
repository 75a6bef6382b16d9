"""How one configuration trains: its data on the device, model, optimizer, LR schedule and precision, and one step.

`build_trainer` makes a Trainer from the model and train sections, the configuration, the dataset's tensors and the
device; `Trainer.step` makes one optimizer step on one effective batch. The train stages' loop, the benchmarks and
anything that wants N steps of a configuration on the real data use the same two.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F

from ..config.params import ModelParams
from ..config.training import RunParams, TrainParams
from ..errors import ArtifactError
from . import distributed
from .model import build_model, check_fits


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


@dataclass
class Splits:
    """The dataset fetch-data prepared, on the device: both splits, the class names and the dataset's name."""

    train: DeviceData
    test: DeviceData
    classes: list[str]
    name: str

    @classmethod
    def load(cls, path: Path, device: torch.device, channels_last: bool = False) -> Splits:
        dataset = read_dataset(path)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        train = DeviceData.load(dataset, "train", device, memory_format)
        test = DeviceData.load(dataset, "test", device, memory_format)
        return cls(train, test, list(dataset["classes"]), dataset["dataset"])


DATASET_KEYS = ("dataset", "classes", "mean", "std", "train_images", "train_labels", "test_images", "test_labels")


def read_dataset(path: Path, mmap: bool = False) -> dict[str, Any]:
    """fetch-data's dataset.pt (datasets/prepared.py writes it); missing, unreadable or incomplete is one line."""
    again = "run fetch-data again (dvc repro fetch-data, or dvc checkout to restore the cached copy)"
    try:
        dataset = torch.load(path, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: run fetch-data first (dvc repro fetch-data)") from None
    except Exception as exc:  # a truncated zip, garbage: torch raises many kinds
        first_line = (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]
        raise ArtifactError(f"{path} is unreadable ({exc.__class__.__name__}: {first_line}): {again}") from None
    missing = [key for key in DATASET_KEYS if not isinstance(dataset, dict) or key not in dataset]
    if missing:
        raise ArtifactError(f"{path} has no {', '.join(missing)}: not a dataset fetch-data wrote; {again}")
    return dataset


def seed_everything(seed: int, rank: int = 0) -> torch.Generator:
    """Seed every RNG (per rank, so ranks draw different dropout masks); return the data-order generator (shared)."""
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)  # NumPy takes 32 bits; params.seed is below 2**32, a rank may carry it over
    torch.manual_seed(seed + rank)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    return torch.Generator().manual_seed(seed)


def steps_per_epoch(samples: int, config: RunParams) -> int:
    """Optimizer steps in one epoch, the short last batch included (the same for any number of processes)."""
    return -(-samples // config.effective_batch_size)


def pick_precision(mixed: bool | str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """`mixed` true: FP16 with loss scaling on CUDA, bf16 autocast on CPUs that support it, fp32 otherwise; or the
    one named (bf16, or fp16 on CUDA)."""
    if not mixed:
        return None, "fp32"
    if device.type == "cuda":
        if mixed != "bf16":
            return torch.float16, "fp16-autocast+gradscaler"
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16-autocast"
        return None, "fp32 (bf16 requested; this GPU has no bf16 support)"
    if mixed == "fp16":
        return None, "fp32 (fp16 requested; on a CPU mixed precision is bf16)"
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16, "bf16-autocast"
    return None, "fp32 (mixed precision requested; this CPU has no bf16 support)"


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


@dataclass
class Trainer:
    """A configuration ready to train: the model, Adam, the LR schedule, and the precision with its GradScaler and
    autocast. `trained` is what the steps run: the model itself, or once `wrap` is called, compiled and/or DDP."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager]
    precision: str  # what really runs, in words
    batch_size: int  # micro-batch
    job: distributed.Job

    def __post_init__(self) -> None:
        self.trained = self.model

    def wrap(self, compile: bool = False) -> None:
        """torch.compile the model if asked, and under torchrun make it a DDP module across the job's ranks."""
        trained = torch.compile(self.model) if compile else self.model
        if self.job.distributed:
            device = self.job.device
            device_ids = [device.index] if device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(trained, device_ids=device_ids)
        self.trained = trained

    def step(self, data: DeviceData, group: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the effective batch `group` (sample indices; this rank trains its share of them);
        returns this rank's summed loss over it, as a device tensor."""
        self.optimizer.zero_grad(set_to_none=True)
        shard = group[self.job.rank :: self.job.world_size]
        loss = accumulate_gradients(
            self.trained, data, shard, len(group), self.batch_size, self.autocast, self.scaler,
            self.job.world_size,
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_schedule.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])


def build_trainer(
    model_params: ModelParams, train: TrainParams, config: RunParams, data: Splits, job: distributed.Job
) -> Trainer:
    """The model (its initial weights drawn from the seeded RNG), checked on two images, and how it steps."""
    device = job.device
    image_shape = tuple(data.train.images.shape[1:])
    model = build_model(model_params.class_path, model_params.kwargs, image_shape, len(data.classes))
    model = model.to(device, memory_format=data.train.memory_format)
    check_fits(model, data.train.batch(slice(0, 2))[0], len(data.classes), model_params.class_path, data.name)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
    total_steps = train.epochs * steps_per_epoch(len(data.train), config)
    lr_schedule = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.learning_rate, total_steps=total_steps)
        if train.lr_schedule == "onecycle"
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    )
    dtype, precision = pick_precision(config.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext
    return Trainer(model, optimizer, lr_schedule, scaler, autocast, precision, config.batch_size, job)


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
