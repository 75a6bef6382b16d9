"""The built-in datasets (config/params.py names them): what torchvision calls them, their normalisation, and where
their mirror is.

Pure data, so the scheduler (which sizes the job) can read it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.params import CUSTOM, FOLDER


@dataclass(frozen=True)
class DatasetSpec:
    torchvision_class: str
    mean: tuple[float, ...]  # per channel, of pixel / 255 over the training split (the published values)
    std: tuple[float, ...]
    mirror_holds: str  # what the mirror folder must contain, for error messages
    train_samples: int  # size of the whole training split

    @property
    def mirror_env(self) -> str:
        return f"CARBON_PIPE_{self.torchvision_class.upper()}_MIRROR"

    def mirror_files(self, dataset_class) -> tuple[str, list[tuple[str, str]]]:
        """Where under the download root torchvision looks for the original files, and their names and md5s."""
        if hasattr(dataset_class, "resources"):  # the MNIST family: four .gz files in <Class>/raw
            return f"{dataset_class.__name__}/raw", list(dataset_class.resources)
        return ".", [(dataset_class.filename, dataset_class.tgz_md5)]  # CIFAR: one archive in the root


DATASETS = {
    "mnist": DatasetSpec("MNIST", (0.1307,), (0.3081,), "the four MNIST .gz files", 60_000),
    "fashion-mnist": DatasetSpec("FashionMNIST", (0.2860,), (0.3530,), "the four Fashion-MNIST .gz files", 60_000),
    "cifar10": DatasetSpec(
        "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar-10-python.tar.gz", 50_000
    ),
}


def source_of(data) -> dict:
    """What decides the size of the whole training split (`data` is the params' DataParams). fetch-data records it
    in its manifest; expected_duration: auto trusts that manifest's size only for the same source."""
    if data.dataset == FOLDER:
        return {"dataset": FOLDER, "path": data.path, "test_fraction": data.test_fraction}
    if data.dataset == CUSTOM:
        return {"dataset": CUSTOM, "class": data.class_path}
    return {"dataset": data.dataset}
