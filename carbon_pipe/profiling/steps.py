"""The profile's one seam to training: a configuration, ready to make N optimizer steps on demand.

Each step is `Trainer.step`, the one the train stages make (training/trainer.py): the same model and seed,
micro-batches with exact accumulation, the same precision, compile and memory format. The LR schedule is held
constant: a step costs the same at any rate, and a one-cycle schedule would refuse steps past the run's length.
Every configuration steps on one copy of the training split on the device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..config.params import Params
from ..config.training import RunParams
from ..errors import ArtifactError
from ..layout import DATASET_FILE
from ..training import distributed
from ..training.trainer import DeviceData, Splits, build_trainer, seed_everything


@dataclass(frozen=True)
class ConfigurationSteps:
    take: Callable[[int], int]  # make this many optimizer steps; returns the samples trained (device synchronised)
    precision: str  # what really runs, as the train stage reports it


@dataclass(frozen=True)
class TrainSplit:
    """The prepared training split on the device, shared by every configuration profiled."""

    data: DeviceData
    classes: list[str]
    dataset: str

    @classmethod
    def load(cls, device: torch.device) -> TrainSplit:
        if not DATASET_FILE.exists():
            raise ArtifactError(
                f"{DATASET_FILE}: not found; run `carbon-pipe fetch-data` (or `dvc repro fetch-data`) first"
            )
        try:
            prepared = torch.load(DATASET_FILE, weights_only=True)
        except Exception as exc:
            raise ArtifactError(
                f"{DATASET_FILE}: unreadable ({exc.__class__.__name__}); run fetch-data again"
            ) from None
        data = DeviceData.load(prepared, "train", device, torch.contiguous_format)
        return cls(data, list(prepared["classes"]), prepared["dataset"])

    @property
    def megabytes(self) -> float:
        return (self.data.images.nbytes + self.data.labels.nbytes) / 2**20


def effective_batches(samples: int, batch: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Shuffled effective batches, epoch after epoch, in the train stage's order for this seed."""
    order_rng = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(samples, generator=order_rng).to(device).split(batch)


def configuration_steps(params: Params, run: RunParams, split: TrainSplit) -> ConfigurationSteps:
    seed_everything(params.seed)  # every configuration starts from the same weights and data order
    memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
    data = dataclasses.replace(split.data, memory_format=memory_format)  # the batches' format; the tensors shared
    device = data.labels.device
    constant = params.train.model_copy(update={"lr_schedule": "constant"})
    splits = Splits(data, data, split.classes, split.dataset)
    trainer = build_trainer(params.model, constant, run, splits, distributed.one_process(device))
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
