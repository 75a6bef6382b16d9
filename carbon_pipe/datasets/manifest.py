"""stages/fetch-data/manifest.json: what fetch-data wrote into dataset.pt, and (an image folder, a data.class
function) which data it was and the size of its whole training split. One model, one writer (the fetch-data stage)
and one reader (`read_data_manifest`: `expected_duration: auto` sizes own data from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from ..artifacts import ArtifactModel, Count, Number, read_model, write_model
from ..layout import DATA_MANIFEST


class DataManifest(ArtifactModel):
    """The dataset fetch-data wrote. An image folder's or a function's data also has the source to the
    normalisation; the keys a kind of data has not are left out of the file."""

    dataset: str = Field(description="data.dataset")
    origin: str = Field(description="where the data came from, in words")
    train_samples: Count = Field(description="training images written (after data.train_limit)")
    test_samples: Count = Field(description="test images written (after data.test_limit)")
    image_shape: list[int] = Field(description="channels, height, width")
    num_classes: Count = Field(description="classes")
    dtype: Literal["uint8"] = Field(description="how the pixels are stored")
    source: Optional[dict[str, Any]] = Field(None, description="own data: what decides its training split's size")
    train_samples_available: Optional[Count] = Field(None, description="own data: the whole training split")
    mean: Optional[list[Number]] = Field(None, description="own data: per-channel mean of pixel / 255")
    std: Optional[list[Number]] = Field(None, description="own data: per-channel standard deviation")
    layout: Optional[str] = Field(None, description="image folder: how its splits were found")
    files_per_class: Optional[dict[str, dict[str, int]]] = Field(None, description="image folder: files per split")
    files_md5: Optional[str] = Field(None, description="image folder: one md5 over every file's path and content")
    image_modes: Optional[dict[str, int]] = Field(None, description="image folder: files per PIL mode")
    samples_per_class: Optional[dict[str, dict[str, int]]] = Field(None, description="data.class: samples per split")
    images_given_as: Optional[str] = Field(None, description="data.class: the pixel type the function gave")
    md5: str = Field(description="dataset.pt's md5")

    def to_json(self) -> dict[str, Any]:
        """As the file holds it: only the keys this kind of data has."""
        return self.model_dump(mode="json", exclude_unset=True)


def write_data_manifest(manifest: DataManifest) -> None:
    write_model(DATA_MANIFEST, manifest)


def read_data_manifest(path: Path = DATA_MANIFEST) -> DataManifest:
    """The manifest as fetch-data wrote it; one that is not is one line naming it."""
    return read_model(path, DataManifest, "a manifest fetch-data wrote", "run dvc repro fetch-data again")
