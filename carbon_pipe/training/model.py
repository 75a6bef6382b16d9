"""The models: SimpleCNN by default, or any nn.Module named by `model.class`, checked against the dataset's shapes."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..config.params import import_named
from ..errors import ModelError
from ..signals import user_code

# Offered to a model's constructor when it has a parameter of that name and model.kwargs does not set it.
DATASET_ARGUMENTS = ("in_channels", "image_size", "num_classes")


class SimpleCNN(nn.Module):
    """Two convolutions and two fully connected layers: >99 % on MNIST in three epochs at the default sizes."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, width: int = 32, hidden: int = 128
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * (image_size // 4) ** 2, hidden),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def load_model_class(class_path: str) -> type[nn.Module]:
    """'package.module:ClassName' -> the class, importable from the installed packages or the project folder."""
    found = import_named(class_path, "model.class", ModelError)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ModelError(f"model.class: {class_path} is not a torch.nn.Module subclass")
    return found


def build_model(class_path: str, kwargs: dict, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    with user_code(f"model.class: {class_path}", ModelError):  # an exit from its import or constructor: refused
        return _build(class_path, kwargs, image_shape, num_classes)


def _build(class_path: str, kwargs: dict, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    model_class = load_model_class(class_path)
    offered = dict(zip(DATASET_ARGUMENTS, (image_shape[0], image_shape[1], num_classes)))
    accepted = inspect.signature(model_class).parameters
    arguments = {name: value for name, value in offered.items() if name in accepted and name not in kwargs}
    try:
        return model_class(**arguments, **kwargs)
    except Exception as exc:  # a wrong keyword (TypeError), or a value the layers refuse (width -1, 2.5): anything
        first_line = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        given = ", ".join(f"{name}={value!r}" for name, value in kwargs.items()) or "none"
        raise ModelError(f"model.kwargs: {class_path}: {first_line} (model.kwargs: {given})") from None


@torch.no_grad()
def check_fits(model: nn.Module, images: torch.Tensor, num_classes: int, class_path: str, dataset: str) -> None:
    """One forward pass in eval mode (no dropout, no RNG drawn): a shape mismatch is one line here, not a traceback
    mid-run."""
    model.eval()
    try:
        with user_code(f"model.class: {class_path}", ModelError):
            logits = model(images)
    except ModelError:
        raise
    except Exception as exc:
        first_line = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise ModelError(
            f"model.class: {class_path} does not fit {dataset} images of shape {tuple(images.shape[1:])}: {first_line}"
        ) from None
    expected = (len(images), num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(
            f"model.class: {class_path} returns {shape} for a batch of {len(images)} {dataset} images; "
            f"expected logits of shape {expected} (one per class)"
        )
