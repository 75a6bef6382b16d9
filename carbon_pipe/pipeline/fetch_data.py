"""The fetch-data stage: the configured dataset as whole uint8 tensors in dataset.pt, and its manifest.

Every kind of dataset (a torchvision one, an image folder, a function's datasets) is read completely into memory
and checked before the first byte is written: a bad input leaves no output behind.
"""

from __future__ import annotations

from ..artifacts import md5sum, save_torch
from ..config.params import CUSTOM, FOLDER, DataParams
from ..datasets.manifest import DataManifest, write_data_manifest
from ..layout import DATASET_FILE


def _prepare(params: DataParams):
    if params.dataset == FOLDER:
        from ..datasets.folder import load_folder

        return load_folder(params)
    if params.dataset == CUSTOM:
        from ..datasets.custom import load_custom

        return load_custom(params)
    from ..datasets.torchvision import load_builtin

    return load_builtin(params)


def run_stage(params: DataParams) -> DataManifest:
    prepared = _prepare(params)
    save_torch(DATASET_FILE, prepared.tensors())
    manifest = DataManifest(
        dataset=params.dataset,
        origin=prepared.origin,
        train_samples=len(prepared.train_labels),
        test_samples=len(prepared.test_labels),
        image_shape=list(prepared.train_images.shape[1:]),
        num_classes=len(prepared.classes),
        dtype="uint8",
        **prepared.manifest,
        md5=md5sum(DATASET_FILE),
    )
    write_data_manifest(manifest)
    return manifest
