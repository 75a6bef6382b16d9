"""The built-in datasets (MNIST, Fashion-MNIST, CIFAR-10) as uint8 tensors, from a local mirror or torchvision's
download.

Offline machines point an environment variable at a folder holding the dataset's original files (what
torchvision would download); their md5 sums are checked before torchvision unpacks them.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

from ..artifacts import md5sum
from ..errors import DataError
from .catalog import DATASETS, DatasetSpec
from .prepared import Prepared

GENERIC_MIRROR_ENV = "CARBON_PIPE_DATA_MIRROR"


def mirror_setting(spec: DatasetSpec) -> tuple[str, str | None]:
    """The dataset's own variable wins; CARBON_PIPE_DATA_MIRROR applies to whichever dataset is configured."""
    for name in (spec.mirror_env, GENERIC_MIRROR_ENV):
        if os.environ.get(name):
            return name, os.environ[name]
    return spec.mirror_env, None


def copy_from_mirror(variable: str, mirror: Path, spec: DatasetSpec, dataset_class, root: Path) -> None:
    """Copy the original files into torchvision's download folder, checking each md5 first."""
    if not mirror.is_dir():
        raise DataError(f"{variable}={mirror}: no such folder (it should hold {spec.mirror_holds})")
    subfolder, files = spec.mirror_files(dataset_class)
    target = root / subfolder
    target.mkdir(parents=True, exist_ok=True)
    for filename, expected in files:
        found = mirror / filename
        if not found.is_file():
            raise DataError(f"{variable}: {found} is missing")
        actual = md5sum(found)
        if actual != expected:
            raise DataError(
                f"{found}: md5 {actual} does not match {dataset_class.__name__}'s {expected} (corrupt or wrong file)"
            )
        shutil.copyfile(found, target / filename)


def load_torchvision(name: str, root: Path):
    """Return torchvision's train and test datasets for `name`, from the mirror if one is set, unpacked under `root`."""
    import torchvision.datasets

    spec = DATASETS[name]
    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    variable, mirror = mirror_setting(spec)
    if mirror:
        copy_from_mirror(variable, Path(mirror), spec, dataset_class, root)
    try:
        # With the mirror's files in place torchvision verifies their md5 and only unpacks them.
        # Its per-mirror chatter goes to stdout; the one line that matters is ours.
        with contextlib.redirect_stdout(io.StringIO()):
            train = dataset_class(str(root), train=True, download=True)
            test = dataset_class(str(root), train=False, download=True)
    except (RuntimeError, OSError) as exc:
        cause = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise DataError(
            f"{spec.torchvision_class} download failed ({cause}); offline? set {variable} to a folder holding "
            f"{spec.mirror_holds}"
        ) from None
    return train, test


def as_tensors(split, limit: int | None):
    """A torchvision split as (N, C, H, W) uint8 images and int64 labels: the whole split, no per-sample PIL."""
    import torch

    images = torch.as_tensor(split.data[:limit])
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # MNIST: N,H,W; CIFAR: N,H,W,C
    return images.contiguous().clone(), torch.as_tensor(split.targets[:limit], dtype=torch.int64).clone()


def load_builtin(data) -> Prepared:
    """A torchvision dataset (`data` is the params' DataParams), unpacked in the system's temporary folder: a
    failure leaves nothing under stages/."""
    import torch

    spec = DATASETS[data.dataset]
    variable, mirror = mirror_setting(spec)
    with tempfile.TemporaryDirectory(prefix="carbon-pipe-download-") as workdir:
        train, test = load_torchvision(data.dataset, Path(workdir))
        train_images, train_labels = as_tensors(train, data.train_limit)
        test_images, test_labels = as_tensors(test, data.test_limit)
        classes = list(train.classes)
    return Prepared(
        data.dataset, f"local mirror ({variable})" if mirror else "torchvision download", classes,
        train_images, train_labels, test_images, test_labels, torch.tensor(spec.mean), torch.tensor(spec.std),
    )
