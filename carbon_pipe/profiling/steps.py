"""The profile's one seam to training: a configuration, ready to make N optimizer steps on demand.

Built from today's pieces of training/loop.py (DeviceData, accumulate_gradients, pick_precision, seed_everything)
so each step is the one the train stage makes: the same model and seed, micro-batches with exact accumulation,
the same precision, compile and memory format. The LR schedule is left out (its step costs nothing measurable).
When training grows a Trainer with a one-step method, `configuration_steps` becomes a few lines around it.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..params import Params, RunParams
from ..training.loop import DeviceData, accumulate_gradients, pick_precision, seed_everything
from ..training.model import build_model, check_fits


@dataclass(frozen=True)
class ConfigurationSteps:
    take: Callable[[int], int]  # make this many optimizer steps; returns the samples trained (device synchronised)
    precision: str  # what really runs, as the train stage reports it


def effective_batches(samples: int, batch: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Shuffled effective batches, epoch after epoch, in the train stage's order for this seed."""
    order_rng = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(samples, generator=order_rng).to(device).split(batch)


def configuration_steps(params: Params, run: RunParams, dataset: dict, device: torch.device) -> ConfigurationSteps:
    seed_everything(params.seed)  # every configuration starts from the same weights and data order
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    data = DeviceData.load(dataset, "train", device, memory_format)
    num_classes = len(dataset["classes"])
    model = build_model(params.model.class_path, params.model.kwargs, tuple(data.images.shape[1:]), num_classes)
    model = model.to(device, memory_format=memory_format)
    check_fits(model, data.batch(slice(0, 2))[0], num_classes, params.model.class_path, dataset["dataset"])
    optimizer = torch.optim.Adam(model.parameters(), lr=params.train.learning_rate)
    autocast_dtype, precision = pick_precision(run.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    autocast = (lambda: torch.autocast(device.type, dtype=autocast_dtype)) if autocast_dtype is not None else nullcontext
    trained = (torch.compile(model) if run.compile else model).train()
    batches = effective_batches(len(data), run.effective_batch_size, params.seed, device)

    def take(steps: int) -> int:
        samples = 0
        for _ in range(steps):
            group = next(batches)
            optimizer.zero_grad(set_to_none=True)
            accumulate_gradients(trained, data, group, len(group), run.batch_size, autocast, scaler)
            scaler.step(optimizer)
            scaler.update()
            samples += len(group)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the burst's time and energy include its queued GPU work
        return samples

    return ConfigurationSteps(take, precision)
