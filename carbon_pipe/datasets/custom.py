"""data.dataset custom: the (train, test) torch Datasets that the function `data.class` names return, stored as the
same whole uint8 tensors as every other dataset.

Each sample is (image, label). The image is a tensor or array of shape (C, H, W) or (H, W), channels first as
torchvision's ToTensor gives, either uint8 or floating point in [0, 1] (stored as round(x * 255), exact for
ToTensor's output of 8-bit images), or a Pillow image; every sample of both splits has one shape. The label is an
int (or a one-element integer tensor) from 0. Class names come from the train dataset's `classes` attribute when
it has one, else "0", "1", ...
"""

from __future__ import annotations

from typing import Any, Callable

from ..config.params import import_named
from ..errors import DataError
from ..signals import user_code
from .images import as_array, natural_channels
from .prepared import Prepared, channel_stats, class_counts, own_data_manifest


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [exc.__class__.__name__])[0]


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _import_function(class_path: str) -> Callable[[], Any]:
    """'package.module:function', importable from the installed packages or the project folder."""
    function = import_named(class_path, "data.class", DataError, kind="function ")
    if not callable(function):
        module_name, name = class_path.split(":")
        raise DataError(f"data.class: module {module_name!r} has no function {name!r}")
    return function


def _datasets(class_path: str) -> tuple[Any, Any]:
    function = _import_function(class_path)
    try:
        result = function()
    except Exception as exc:
        raise DataError(f"data.class: {class_path} raised {exc.__class__.__name__}: {_first_line(exc)}") from None
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise DataError(
            f"data.class: {class_path} returned {_describe(result)}; expected a pair (train, test) of torch Datasets"
        )
    return result[0], result[1]


def _image(value: Any, where: str) -> tuple[Any, bool]:
    """One sample's image as a uint8 (C, H, W) tensor, and whether it was given as floats."""
    import numpy as np
    import torch
    from PIL import Image

    if isinstance(value, Image.Image):
        try:
            array = as_array(value, natural_channels(value))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1), False
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{where}: the image is {_describe(value)}; expected a tensor (C, H, W) or a Pillow image")
    image = value.detach().cpu()
    image = image.unsqueeze(0) if image.ndim == 2 else image
    if image.ndim != 3:
        raise DataError(
            f"{where}: shape {tuple(value.shape)}; expected an image (C, H, W) or (H, W) "
            "(the training loop normalises per channel and the models take images, so feature vectors are refused)"
        )
    if image.dtype == torch.uint8:
        return image, False
    if not image.is_floating_point():
        raise DataError(f"{where}: dtype {image.dtype}; expected uint8, or floating point in [0, 1]")
    low, high = image.min().item(), image.max().item()
    if not (0.0 <= low and high <= 1.0):  # NaN fails too
        raise DataError(
            f"{where}: values from {low:.4g} to {high:.4g}; floating-point images must lie in [0, 1] "
            "(unnormalised: fetch-data computes the mean and std)"
        )
    return (image.double() * 255).round().to(torch.uint8), True


def _label(value: Any, where: str) -> int:
    import numpy as np
    import torch

    if (
        isinstance(value, torch.Tensor)
        and value.numel() == 1
        and not (value.is_floating_point() or value.dtype == torch.bool)
    ):
        value = value.item()
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: label {value!r} ({type(value).__name__}); expected an int from 0")
    return value


def _materialise(split: Any, where: str, limit: int | None) -> tuple[Any, Any, bool]:
    """The first `limit` samples of one split as whole tensors, and whether any image was given as floats."""
    import torch

    if not (hasattr(split, "__len__") and hasattr(split, "__getitem__")):
        raise DataError(
            f"{where} is {_describe(split)}, without len() and indexing (a map-style torch Dataset is needed)"
        )
    count = min(len(split), limit or len(split))
    if count == 0:
        raise DataError(f"{where} is empty")
    images, labels, floats = None, torch.empty(count, dtype=torch.int64), False
    for index in range(count):
        try:
            sample = split[index]
        except Exception as exc:
            raise DataError(f"{where} sample {index}: {exc.__class__.__name__}: {_first_line(exc)}") from None
        if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
            raise DataError(f"{where} sample {index} is {_describe(sample)}; expected a pair (image, label)")
        image, was_float = _image(sample[0], f"{where} sample {index}")
        if images is None:
            images = torch.empty((count, *image.shape), dtype=torch.uint8)
        elif image.shape != images.shape[1:]:
            raise DataError(
                f"{where} sample {index} has shape {tuple(image.shape)}, sample 0 {tuple(images.shape[1:])}: "
                "every sample needs one shape"
            )
        images[index], labels[index], floats = image, _label(sample[1], f"{where} sample {index}"), floats or was_float
    return images, labels, floats


def _classes(train: Any, top_label: int, where: str) -> list[str]:
    names = getattr(train, "classes", None)
    if names is None:
        return [str(label) for label in range(top_label + 1)]
    if top_label >= len(names):
        raise DataError(f"{where}: label {top_label}, but the train dataset's classes names only {len(names)}")
    return [str(name) for name in names]


def load_custom(data) -> Prepared:
    """data.dataset custom (`data` is the params' DataParams) as whole tensors; an exit from the user's code (the
    import, the function, the datasets) is refused, so fetch-data never ends with success and nothing written."""
    with user_code(f"data.class: {data.class_path}", DataError):
        return _load(data)


def _load(data) -> Prepared:
    where = f"data.class: {data.class_path}"
    train, test = _datasets(data.class_path)
    train_images, train_labels, train_floats = _materialise(train, f"{where}: the train dataset", data.train_limit)
    test_images, test_labels, test_floats = _materialise(test, f"{where}: the test dataset", data.test_limit)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{where}: test images have shape {tuple(test_images.shape[1:])}, train images "
            f"{tuple(train_images.shape[1:])}: both splits need one shape"
        )
    classes = _classes(train, int(max(train_labels.max(), test_labels.max())), where)
    label = f"{data.class_path} (data.class)"
    mean, std = channel_stats(train_images, label)
    return Prepared(
        label,
        f"data.class {data.class_path}",
        classes,
        train_images,
        train_labels,
        test_images,
        test_labels,
        mean,
        std,
        own_data_manifest(
            data,
            len(train),
            mean,
            std,
            samples_per_class={
                "train": class_counts(train_labels, classes),
                "test": class_counts(test_labels, classes),
            },
            images_given_as="floating point in [0, 1], stored as round(x * 255)"
            if train_floats or test_floats
            else "uint8",
        ),
    )
