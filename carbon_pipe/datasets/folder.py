"""data.dataset folder: an image folder's classes, its train/test split, the order samples are stored in, a
fingerprint of every file, and (load_folder) its images as tensors, which images.py decodes.

Two layouts: `train/<class>/*` and `test/<class>/*`, or one tree `<class>/*` whose classes are each split by
data.test_fraction. Classes are the folder names in sorted order (label = position); files are found at any depth
inside a class folder; hidden files and folders (a leading dot) are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import md5sum
from ..errors import DataError
from .images import read_images
from .prepared import Prepared, channel_stats, own_data_manifest

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Listing:
    root: Path
    layout: str  # in words, for the manifest
    classes: list[str]
    train: list[tuple[Path, int]]  # (file, label), in stored order
    test: list[tuple[Path, int]]

    def files_per_class(self) -> dict[str, dict[str, int]]:
        counts = {name: {split: 0 for split in SPLITS} for name in self.classes}
        for split, samples in zip(SPLITS, (self.train, self.test)):
            for _, label in samples:
                counts[self.classes[label]][split] += 1
        return counts

    def files_md5(self) -> str:
        """One md5 over every file's path and content: any renamed, added, removed or edited image changes it."""
        digest = hashlib.md5()
        for path in sorted((path for path, _ in self.train + self.test), key=lambda path: self._relative(path)):
            digest.update(f"{self._relative(path)}\0{md5sum(path)}\n".encode())
        return digest.hexdigest()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _visible(folder: Path) -> list[Path]:
    return sorted((entry for entry in folder.iterdir() if not entry.name.startswith(".")), key=lambda e: e.name)


def _images_in(class_folder: Path) -> list[Path]:
    found = []
    for path in class_folder.rglob("*"):
        relative = path.relative_to(class_folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{path}: not an image file (accepted: {', '.join(IMAGE_EXTENSIONS)}, any case)")
        found.append(path)
    if not found:
        raise DataError(f"{class_folder}: empty class (no images)")
    return sorted(found, key=lambda path: path.relative_to(class_folder).as_posix())


def _classes_in(folder: Path) -> dict[str, list[Path]]:
    """Each class folder of `folder` and its images; a file beside the class folders is refused."""
    entries = _visible(folder)
    for entry in entries:
        if not entry.is_dir():
            raise DataError(f"{entry}: not inside a class folder (expected {folder}/<class>/{entry.name})")
    if not entries:
        raise DataError(
            f"data.path: {folder} holds no class folders "
            "(expected train/<class>/* and test/<class>/*, or one tree <class>/*)"
        )
    return {entry.name: _images_in(entry) for entry in entries}


def _rank(seed: int, root: Path, path: Path) -> str:
    """A file's place in a seeded shuffle that depends on its own name only: adding one image moves no other."""
    return hashlib.sha256(f"{seed}\0{path.relative_to(root).as_posix()}".encode()).hexdigest()


def _split_tree(tree: dict[str, list[Path]], root: Path, fraction: float, seed: int):
    """Hold out round(n x fraction) of each class (the lowest ranks); the rest is for training."""
    train, test = [], []
    for label, (name, files) in enumerate(sorted(tree.items())):
        held_out = int(len(files) * fraction + 0.5)
        if held_out >= len(files):
            raise DataError(
                f"{root / name}: {len(files)} image(s) leave none for training at data.test_fraction {fraction}"
            )
        ranked = sorted(files, key=lambda path: _rank(seed, root, path))
        test += [(path, label) for path in ranked[:held_out]]
        train += [(path, label) for path in ranked[held_out:]]
    if not test:
        raise DataError(
            f"data.test_fraction {fraction} holds out no image of {root} (its classes are too small): "
            "raise it, or give train/ and test/ folders"
        )
    return train, test


def _labelled(tree: dict[str, list[Path]], classes: list[str]) -> list[tuple[Path, int]]:
    return [(path, classes.index(name)) for name, files in tree.items() for path in files]


def list_folder(path: str, test_fraction: float, seed: int) -> Listing:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path: {root}: no such folder")
    present = [name for name in SPLITS if (root / name).is_dir()]
    if len(present) == 1:
        missing = next(name for name in SPLITS if name not in present)
        raise DataError(
            f"data.path: {root} has {present[0]}/ but no {missing}/ "
            "(give both, or one tree of class folders split by data.test_fraction)"
        )
    if present:
        strays = [entry for entry in _visible(root) if entry.name not in SPLITS]
        if strays:
            raise DataError(f"{strays[0]}: beside train/ and test/ (with those, every class folder goes inside both)")
        train_tree, test_tree = (_classes_in(root / name) for name in SPLITS)
        classes = sorted(train_tree)
        strays = sorted(set(test_tree) - set(train_tree))
        if strays:
            raise DataError(f"{root / 'test' / strays[0]}: class {strays[0]!r} has no folder in {root / 'train'}")
        train, test = _labelled(train_tree, classes), _labelled(test_tree, classes)
        layout = "train/ and test/ folders"
    else:
        tree = _classes_in(root)
        classes = sorted(tree)
        train, test = _split_tree(tree, root, test_fraction, seed)
        layout = f"one tree, {test_fraction:g} of each class held out for testing"
    return Listing(root, layout, classes, _shuffled(train, root, seed), _shuffled(test, root, seed))


def _shuffled(samples: list[tuple[Path, int]], root: Path, seed: int) -> list[tuple[Path, int]]:
    """The stored order: a seeded shuffle, so that data.train_limit / test_limit take every class in proportion."""
    return sorted(samples, key=lambda sample: _rank(seed, root, sample[0]))


def load_folder(data) -> Prepared:
    """data.dataset folder (`data` is the params' DataParams) as whole tensors: every kept image is decoded and
    checked, train and test together (they must agree on channels and, without data.image_size, on size)."""
    import torch

    listing = list_folder(data.path, data.test_fraction, data.split_seed)
    kept = listing.train[: data.train_limit] + listing.test[: data.test_limit]
    images, modes = read_images([path for path, _ in kept], data.image_size, data.channels)
    labels = torch.tensor([label for _, label in kept], dtype=torch.int64)
    count = min(len(listing.train), data.train_limit or len(listing.train))
    label = f"{data.path} (folder)"
    mean, std = channel_stats(images[:count], label)
    return Prepared(
        label,
        f"image folder {data.path}",
        listing.classes,
        images[:count].clone(),
        labels[:count].clone(),
        images[count:].clone(),
        labels[count:].clone(),  # no shared storage
        mean,
        std,
        own_data_manifest(
            data,
            len(listing.train),
            mean,
            std,
            layout=listing.layout,
            files_per_class=listing.files_per_class(),
            files_md5=listing.files_md5(),
            image_modes=modes,
        ),
    )
