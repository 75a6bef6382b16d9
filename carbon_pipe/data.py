"""The fetch-data stage: MNIST as uint8 tensors, from a local mirror (offline machines) or torchvision's download."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

from .artifacts import save_torch, write_json
from .errors import DataError
from .layout import DATA_DIR, DATA_MANIFEST, DATASET_FILE
from .params import DataParams

MIRROR_ENV = "CARBON_PIPE_DATA_MIRROR"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_from_mirror(mirror: Path, raw_folder: Path, resources: list[tuple[str, str]]) -> None:
    """Copy the original .gz files into torchvision's raw folder, checking each md5 first."""
    if not mirror.is_dir():
        raise DataError(f"{MIRROR_ENV}={mirror}: no such folder (it should hold the four MNIST .gz files)")
    raw_folder.mkdir(parents=True, exist_ok=True)
    for filename, expected in resources:
        found = mirror / filename
        if not found.is_file():
            raise DataError(f"{MIRROR_ENV}: {found} is missing")
        actual = md5sum(found)
        if actual != expected:
            raise DataError(f"{found}: md5 {actual} does not match MNIST's {expected} (corrupt or wrong file)")
        shutil.copyfile(found, raw_folder / filename)


def load_mnist(workdir: Path, mirror: str | None):
    """Return torchvision's train and test MNIST datasets, unpacked under `workdir`."""
    from torchvision.datasets import MNIST

    if mirror:
        copy_from_mirror(Path(mirror), workdir / "MNIST" / "raw", MNIST.resources)
    try:
        # With the mirror's files in place torchvision verifies their md5 and only unpacks them.
        # Its per-mirror chatter goes to stdout; the one line that matters is ours.
        with contextlib.redirect_stdout(io.StringIO()):
            train = MNIST(str(workdir), train=True, download=True)
            test = MNIST(str(workdir), train=False, download=True)
    except (RuntimeError, OSError) as exc:
        cause = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise DataError(
            f"MNIST download failed ({cause}); offline? set {MIRROR_ENV} to a folder holding the four MNIST .gz files"
        ) from None
    return train, test


def run_stage(params: DataParams) -> dict:
    mirror = os.environ.get(MIRROR_ENV) or None
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mnist-", dir=DATA_DIR) as workdir:
        train, test = load_mnist(Path(workdir), mirror)
        # torchvision already holds the whole split as one uint8 tensor: take it, no per-sample PIL round trip.
        tensors = {
            "train_images": train.data[: params.train_limit].clone(),
            "train_labels": train.targets[: params.train_limit].clone(),
            "test_images": test.data[: params.test_limit].clone(),
            "test_labels": test.targets[: params.test_limit].clone(),
        }
    save_torch(DATASET_FILE, tensors)
    manifest = {
        "dataset": params.dataset,
        "origin": f"local mirror ({MIRROR_ENV})" if mirror else "torchvision download",
        "train_samples": len(tensors["train_labels"]),
        "test_samples": len(tensors["test_labels"]),
        "image_shape": list(tensors["train_images"].shape[1:]),
        "dtype": "uint8",
        "md5": md5sum(DATASET_FILE),
    }
    write_json(DATA_MANIFEST, manifest)
    return manifest
