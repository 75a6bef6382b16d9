"""What every dataset becomes before fetch-data writes it: whole uint8 (N, C, H, W) splits, the class names and
the per-channel normalisation the training loop applies to each batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError


@dataclass
class Prepared:
    label: str  # names the data in dataset.pt, the run summaries and model-fit messages
    origin: str  # where it came from, in words (the manifest's `origin`)
    classes: list[str]
    train_images: Any  # torch.Tensor, uint8 N, C, H, W
    train_labels: Any  # torch.Tensor, int64 N
    test_images: Any
    test_labels: Any
    mean: Any  # torch.Tensor, C: of pixel / 255 over the training split
    std: Any
    manifest: dict[str, Any] = field(default_factory=dict)  # what manifest.json records beyond the sizes

    def tensors(self) -> dict[str, Any]:
        """dataset.pt's content: the keys the training loop reads."""
        return {
            "dataset": self.label,
            "classes": self.classes,
            "mean": self.mean,
            "std": self.std,
            "train_images": self.train_images,
            "train_labels": self.train_labels,
            "test_images": self.test_images,
            "test_labels": self.test_labels,
        }


def channel_stats(images, label: str) -> tuple[Any, Any]:
    """Per-channel mean and std of pixel / 255, from exact integer sums (the same bytes give the same figures,
    whatever the chunking). A channel without variation gets std 1 (it normalises to 0, not to a division by
    zero); training images without any variation are refused."""
    import torch

    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.int64)
    squares = torch.zeros(channels, dtype=torch.int64)
    for chunk in images.split(4096):
        wide = chunk.to(torch.int64)
        total += wide.sum(dim=(0, 2, 3))
        squares += (wide * wide).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total.double() / count / 255.0
    std = (squares.double() / count / 255.0**2 - mean * mean).clamp(min=0).sqrt()
    if bool((std == 0).all()):
        raise DataError(f"{label}: every training image is one flat colour, the same in all: nothing to learn")
    return mean.float(), torch.where(std == 0, 1.0, std).float()


def own_data_manifest(data, train_samples_available: int, mean, std, **details: Any) -> dict[str, Any]:
    """What manifest.json records of a folder or data.class dataset (`data` is the params' DataParams): which
    data it is (expected_duration: auto reads it), the whole training split's size, the normalisation computed."""
    from .catalog import source_of

    return {
        "source": source_of(data),
        "train_samples_available": train_samples_available,
        "mean": [round(value, 6) for value in mean.tolist()],
        "std": [round(value, 6) for value in std.tolist()],
        **details,
    }


def class_counts(labels, classes: list[str]) -> dict[str, int]:
    import torch

    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    return dict(zip(classes, counts))
