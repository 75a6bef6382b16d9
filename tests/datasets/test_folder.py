"""data.dataset folder: an image folder becomes dataset.pt like the built-in sets, byte for byte the same from the
same folder and seed, and every bad folder is one line per problem, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from carbon_pipe.artifacts import md5sum
from carbon_pipe.cli import app
from carbon_pipe.config.params import DataParams
from carbon_pipe.pipeline import fetch_data

from ..conftest import default_params, write_params

DATASET = Path("stages/fetch-data/dataset.pt")
MANIFEST = Path("stages/fetch-data/manifest.json")


def png(path: Path, value, size=(12, 12), mode="RGB") -> Path:
    """A constant image (value: an int, or a tuple per channel), so a test can tell which file became which sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def folder(root: Path, split: bool = True, per_class: dict | None = None, **image) -> Path:
    """Classes `cat` and `dog`; the value of image i of class c is 100 * c + 10 + i (unique per file)."""
    per_class = per_class or {"cat": (5, 2), "dog": (5, 2)}
    for label, (name, (train, test)) in enumerate(sorted(per_class.items())):
        for i in range(train + test):
            value = 100 * label + 10 + i
            where = root / ("train" if i < train else "test") / name if split else root / name
            png(where / f"{i:02d}.png", value if image.get("mode") == "L" else (value, value, 0), **image)
    return root


def fetch(**data) -> dict:
    return fetch_data.run_stage(DataParams(dataset="folder", **data)).to_json()


def first_values(images: torch.Tensor) -> list[int]:
    """Channel 0 of each (constant) image."""
    return images[:, 0, 0, 0].tolist()


def test_train_and_test_folders_become_the_tensors_the_loop_reads(workspace):
    folder(workspace / "images")
    manifest = fetch(path="images")
    data = torch.load(DATASET, weights_only=True)
    assert data["classes"] == ["cat", "dog"] and data["dataset"] == "images (folder)"
    assert data["train_images"].shape == (10, 3, 12, 12) and data["train_images"].dtype == torch.uint8
    assert data["test_images"].shape == (4, 3, 12, 12) and data["test_labels"].dtype == torch.int64
    # Every file became exactly one sample, with its class's label: cat 10-16, dog 110-116.
    assert sorted(first_values(data["train_images"])) == [10, 11, 12, 13, 14, 110, 111, 112, 113, 114]
    assert sorted(first_values(data["test_images"])) == [15, 16, 115, 116]
    assert all(
        label == value // 100 for label, value in zip(data["train_labels"].tolist(), first_values(data["train_images"]))
    )
    pixels = data["train_images"].double() / 255
    assert data["mean"].tolist() == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert data["std"][:2].tolist() == pytest.approx(pixels.std(dim=(0, 2, 3), unbiased=False)[:2].tolist(), abs=1e-6)
    assert manifest["files_per_class"] == {"cat": {"train": 5, "test": 2}, "dog": {"train": 5, "test": 2}}
    assert manifest["layout"] == "train/ and test/ folders" and manifest["image_modes"] == {"RGB": 14}
    assert manifest["train_samples_available"] == 10 and manifest["md5"] == md5sum(DATASET)
    assert json.loads(MANIFEST.read_text()) == manifest


def test_one_tree_is_split_per_class_by_test_fraction_and_the_same_seed_gives_the_same_bytes(workspace):
    folder(workspace / "images", split=False, per_class={"cat": (10, 0), "dog": (10, 0)})
    first = fetch(path="images", test_fraction=0.3, split_seed=7)
    again = fetch(path="images", test_fraction=0.3, split_seed=7)
    assert first["md5"] == again["md5"] and first["files_per_class"] == {
        "cat": {"train": 7, "test": 3}, "dog": {"train": 7, "test": 3}
    }
    held_out = set(first_values(torch.load(DATASET, weights_only=True)["test_images"]))
    other = fetch(path="images", test_fraction=0.3, split_seed=8)
    other_held_out = set(first_values(torch.load(DATASET, weights_only=True)["test_images"]))
    assert other["files_per_class"] == first["files_per_class"] and other_held_out != held_out
    assert first["files_md5"] == other["files_md5"]  # the same files; only the split differs


def test_limits_take_a_seeded_sample_of_every_class(workspace):
    folder(workspace / "images", per_class={"cat": (20, 2), "dog": (20, 2)})
    manifest = fetch(path="images", train_limit=10, test_limit=3)
    data = torch.load(DATASET, weights_only=True)
    assert manifest["train_samples"] == 10 and manifest["test_samples"] == 3
    assert manifest["train_samples_available"] == 40 and set(data["train_labels"].tolist()) == {0, 1}


def test_a_changed_image_changes_the_files_md5_and_the_dataset(workspace):
    images = folder(workspace / "images")
    before = fetch(path="images")
    png(images / "train" / "dog" / "03.png", (113, 113, 1))  # one channel of one image, by one step
    after = fetch(path="images")
    assert after["files_md5"] != before["files_md5"] and after["md5"] != before["md5"]


def test_resize_takes_the_shorter_side_then_the_centre_square(workspace):
    for name in ("cat", "dog"):
        wide = np.zeros((20, 40), dtype=np.uint8)
        wide[:, 10:30] = 255 if name == "cat" else 128  # the centre square is bright, the sides black
        for split in ("train", "test"):
            (workspace / "images" / split / name).mkdir(parents=True)
            Image.fromarray(wide).save(workspace / "images" / split / name / "wide.png")
    manifest = fetch(path="images", image_size=10)
    train = torch.load(DATASET, weights_only=True)["train_images"]
    assert manifest["image_shape"] == [1, 10, 10]  # grayscale images: one channel (data.channels: auto)
    assert train[:, :, :, 1:9].unique().tolist() == [128, 255]  # the crop kept the centre; the black sides are gone


def test_channels_follow_the_images_or_the_setting(workspace):
    images = folder(workspace / "images", mode="L", size=(8, 8))
    assert fetch(path="images")["image_shape"] == [1, 8, 8]
    png(images / "train" / "cat" / "colour.png", (200, 10, 10), size=(8, 8))
    mixed = fetch(path="images")
    assert mixed["image_shape"] == [3, 8, 8] and mixed["image_modes"] == {"L": 14, "RGB": 1}
    assert fetch(path="images", channels=1)["image_shape"] == [1, 8, 8]


def corrupt(root: Path) -> None:
    folder(root)
    (root / "train" / "cat" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def truncated(root: Path) -> None:
    folder(root, size=(64, 64))
    victim = root / "test" / "dog" / "05.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(victim)
    victim.write_bytes(victim.read_bytes()[:400])


def corrupt_and_truncated(root: Path) -> None:
    """One file fails as it is opened, the other only as it is decoded: one run names both."""
    truncated(root)
    (root / "train" / "cat" / "00.png").write_bytes(b"")


FOLDER_CASES = [
    ("missing-folder", lambda root: None, {}, ["data.path: images: no such folder"]),
    ("no-classes", lambda root: root.mkdir(), {}, ["data.path: images holds no class folders"]),
    (
        "empty-class",
        lambda root: (folder(root), (root / "train" / "bird").mkdir()),
        {},
        ["images/train/bird: empty class (no images)"],
    ),
    (
        "empty-class-but-hidden-files",
        lambda root: (folder(root, split=False), png(root / "bird" / ".thumb.png", 0)),
        {},
        ["images/bird: empty class"],
    ),
    (
        "folder-beside-train-and-test",
        lambda root: (folder(root), png(root / "extra" / "a.png", 0)),
        {},
        ["images/extra: beside train/ and test/"],
    ),
    ("corrupt-image", corrupt, {}, ["images/train/cat/00.png: cannot read the image (UnidentifiedImageError"]),
    ("truncated-image", truncated, {}, ["images/test/dog/05.png: cannot read the image (OSError"]),
    (
        "corrupt-and-truncated",
        corrupt_and_truncated,
        {},
        ["images/train/cat/00.png: cannot read", "images/test/dog/05.png: cannot read"],
    ),
    (
        "not-an-image",
        lambda root: (folder(root), (root / "train" / "cat" / "notes.txt").write_text("hi")),
        {},
        ["images/train/cat/notes.txt: not an image file"],
    ),
    (
        "sixteen-bit",
        lambda root: (
            folder(root),
            Image.fromarray(np.zeros((12, 12), np.uint16)).save(root / "train" / "dog" / "deep.png"),
        ),
        {},
        ["images/train/dog/deep.png: mode I;16 (16-bit or floating point)"],
    ),
    (
        "mixed-sizes",
        lambda root: (folder(root), png(root / "test" / "cat" / "big.png", 0, size=(16, 12))),
        {},
        ["images/test/cat/big.png: 16x12 pixels, but images/train/"],
    ),
    (
        "corrupt-and-mixed-sizes",
        lambda root: (corrupt(root), png(root / "test" / "cat" / "big.png", 0, size=(16, 12))),
        {},
        ["images/train/cat/00.png: cannot read", "images/test/cat/big.png: 16x12 pixels"],
    ),
    (
        "train-without-test",
        lambda root: png(root / "train" / "cat" / "a.png", 0),
        {},
        ["data.path: images has train/ but no test/"],
    ),
    (
        "test-class-not-in-train",
        lambda root: (folder(root), png(root / "test" / "bird" / "a.png", 0)),
        {},
        ["images/test/bird: class 'bird' has no folder in images/train"],
    ),
    (
        "image-outside-classes",
        lambda root: (folder(root, split=False), png(root / "stray.png", 0)),
        {},
        ["images/stray.png: not inside a class folder"],
    ),
    (
        "class-too-small-to-split",
        lambda root: folder(root, split=False, per_class={"cat": (4, 0), "dog": (1, 0)}),
        {"test_fraction": 0.5},
        ["images/dog: 1 image(s) leave none for training at data.test_fraction 0.5"],
    ),
    (
        "nothing-held-out",
        lambda root: folder(root, split=False, per_class={"cat": (2, 0), "dog": (2, 0)}),
        {"test_fraction": 0.1},
        ["data.test_fraction 0.1 holds out no image of images"],
    ),
    (
        "flat-images",
        lambda root: [png(root / s / c / "a.png", (9, 9, 9)) for s in ("train", "test") for c in ("cat", "dog")],
        {},
        ["images (folder): every training image is one flat colour, the same in all: nothing to learn"],
    ),
    (
        "folder-without-path",
        lambda root: folder(root),
        {"path": None},
        ["params.yaml: data.path: must name a folder: fetch-data depends on it in dvc.yaml whatever the dataset"],
    ),
]


@pytest.mark.parametrize(
    "setup, data, expected", [case[1:] for case in FOLDER_CASES], ids=[case[0] for case in FOLDER_CASES]
)
def test_a_bad_image_folder_is_one_line_per_problem_and_writes_nothing(workspace, setup, data, expected):
    setup(workspace / "images")
    params = default_params()
    params["data"].update({"dataset": "folder", "path": "images", **data})
    write_params(workspace, params)
    before = set(workspace.rglob("*"))
    result = CliRunner().invoke(app, ["fetch-data"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert len(lines) == len(expected) and all(
        line.startswith("carbon-pipe: error: ") and text in line for line, text in zip(lines, expected)
    ), lines
    assert "Traceback" not in result.output and set(workspace.rglob("*")) == before


def test_many_unreadable_images_are_named_up_to_ten_then_counted(workspace):
    folder(workspace / "images", per_class={"cat": (14, 2), "dog": (5, 2)})
    for path in sorted((workspace / "images" / "train" / "cat").iterdir()):
        path.write_bytes(b"garbage")
    with pytest.raises(Exception) as caught:
        fetch(path="images")
    lines = str(caught.value).splitlines()
    assert len(lines) == 11 and lines[-1] == "... and 4 more" and not DATASET.exists()


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"dataset": "folder", "path": "stages/fetch-data"},
            "data.path: 'stages/fetch-data' overlaps the pipeline's own outputs (stages/, metrics/), which change with "
            "every run: name your image folder (default data/images)",
        ),
        (
            {"dataset": "mnist", "path": ".."},
            "data.path: '..' overlaps the pipeline's own outputs (stages/, metrics/), which change with every run: "
            "name your image folder (default data/images)",
        ),
        (
            {"dataset": "mnist", "path": None},
            "data.path: must name a folder: fetch-data depends on it in dvc.yaml whatever the dataset (default "
            "data/images, which holds only a .gitkeep)",
        ),
        (
            {"dataset": "folder", "path": "images", "channels": 2},
            "data.channels: Input should be 'auto', 1 or 3, got 2",
        ),
        (
            {"dataset": "folder", "path": "images", "test_fraction": 1},
            "data.test_fraction: Input should be less than 1",
        ),
        (
            {"dataset": "folder", "path": "images", "image_size": 0},
            "data.image_size: Input should be greater than or equal to 1",
        ),
        (
            {"dataset": "imagenet"},
            "data.dataset: unknown dataset 'imagenet' (known: mnist, fashion-mnist, cifar10, folder, custom)",
        ),
    ],
)
def test_folder_params_are_checked_before_any_work(workspace, data, expected):
    params = default_params()
    params["data"].update(data)
    write_params(workspace, params)
    result = CliRunner().invoke(app, ["fetch-data"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: params.yaml: {expected}"
    ]
