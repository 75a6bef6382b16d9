"""The fetch-data stage: the configured dataset as whole uint8 tensors in dataset.pt, and its manifest."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..artifacts import md5sum, save_torch, write_json
from ..datasets.catalog import DATASETS
from ..datasets.torchvision import as_tensors, load_torchvision, mirror_setting
from ..layout import DATA_MANIFEST, DATASET_FILE
from ..params import DataParams


def run_stage(params: DataParams) -> dict:
    import torch

    spec = DATASETS[params.dataset]
    variable, mirror = mirror_setting(spec)
    # Unpack in the system's temporary folder: a failure leaves nothing under stages/.
    with tempfile.TemporaryDirectory(prefix="carbon-pipe-download-") as workdir:
        train, test = load_torchvision(params.dataset, Path(workdir))
        train_images, train_labels = as_tensors(train, params.train_limit)
        test_images, test_labels = as_tensors(test, params.test_limit)
        classes = list(train.classes)
    tensors = {
        "dataset": params.dataset,
        "classes": classes,
        "mean": torch.tensor(spec.mean),
        "std": torch.tensor(spec.std),
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    save_torch(DATASET_FILE, tensors)
    manifest = {
        "dataset": params.dataset,
        "origin": f"local mirror ({variable})" if mirror else "torchvision download",
        "train_samples": len(train_labels),
        "test_samples": len(test_labels),
        "image_shape": list(train_images.shape[1:]),
        "num_classes": len(classes),
        "dtype": "uint8",
        "md5": md5sum(DATASET_FILE),
    }
    write_json(DATA_MANIFEST, manifest)
    return manifest
