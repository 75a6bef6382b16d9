"""The profile's one seam to training: a configuration, ready to make N optimizer steps on demand.

Each step is `Trainer.step`, the one the train stages make (training/trainer.py): the same model and seed,
micro-batches with exact accumulation, the same precision, compile and memory format. The LR schedule is held
constant: a step costs the same at any rate, and a one-cycle schedule would refuse steps past the run's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..params import Params, RunParams
from ..training import distributed
from ..training.trainer import DeviceData, Splits, build_trainer, seed_everything


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
    constant = params.model_copy(update={"train": params.train.model_copy(update={"lr_schedule": "constant"})})
    trainer = build_trainer(
        constant, run, Splits(data, data, list(dataset["classes"]), dataset["dataset"]), distributed.one_process(device)
    )
    trainer.wrap(run.compile)
    trainer.trained.train()
    batches = effective_batches(len(data), run.effective_batch_size, params.seed, device)

    def take(steps: int) -> int:
        samples = 0
        for _ in range(steps):
            group = next(batches)
            trainer.step(data, group)
            samples += len(group)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the burst's time and energy include its queued GPU work
        return samples

    return ConfigurationSteps(take, trainer.precision)
