"""fetch-data from a local mirror: md5 checks, subsets, and one-line errors."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from ..conftest import default_params, write_params


def fetch(workspace, env_mirror, monkeypatch):
    monkeypatch.setenv("CARBON_PIPE_DATA_MIRROR", str(env_mirror))
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "fetch-data", "--params", "params.yaml"],
        cwd=workspace, capture_output=True, text=True,
    )


def test_every_built_in_dataset_params_may_name_is_described_in_the_catalog():
    from carbon_pipe.config.params import BUILT_IN_DATASETS
    from carbon_pipe.datasets.catalog import DATASETS

    assert tuple(DATASETS) == BUILT_IN_DATASETS


@pytest.mark.slow
def test_fetch_from_mirror_writes_uint8_subset(workspace, mnist_mirror, monkeypatch):
    params = default_params()
    params["data"].update(train_limit=300, test_limit=100)
    write_params(workspace, params)
    result = fetch(workspace, mnist_mirror, monkeypatch)
    assert result.returncode == 0, result.stderr
    tensors = torch.load(workspace / "stages/fetch-data/dataset.pt", weights_only=True)
    assert tensors["train_images"].shape == (300, 1, 28, 28) and tensors["train_images"].dtype == torch.uint8
    assert tensors["dataset"] == "mnist" and len(tensors["classes"]) == 10 and tensors["mean"].shape == (1,)
    assert tensors["test_labels"].shape == (100,)
    manifest = json.loads((workspace / "stages/fetch-data/manifest.json").read_text())
    assert manifest["train_samples"] == 300 and "mirror" in manifest["origin"]
    # Only the two outputs: the download was unpacked elsewhere and is gone.
    assert sorted(path.name for path in (workspace / "stages/fetch-data").iterdir()) == ["dataset.pt", "manifest.json"]


@pytest.mark.slow
def test_corrupt_mirror_file_is_one_line_and_writes_nothing(workspace, mnist_mirror, monkeypatch, tmp_path_factory):
    mirror = tmp_path_factory.mktemp("mirror")
    for item in mnist_mirror.iterdir():
        shutil.copy(item, mirror / item.name)
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not really gzip")
    write_params(workspace, default_params())
    result = fetch(workspace, mirror, monkeypatch)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "t10k-labels-idx1-ubyte.gz: md5" in lines[0] and "does not match" in lines[0]
    assert not (workspace / "stages/fetch-data/dataset.pt").exists()


@pytest.mark.slow
def test_missing_mirror_folder_names_the_variable(workspace, monkeypatch):
    write_params(workspace, default_params())
    result = fetch(workspace, workspace / "nowhere", monkeypatch)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: CARBON_PIPE_DATA_MIRROR={workspace / 'nowhere'}: no such folder "
        "(it should hold the four MNIST .gz files)"
    ]


def idx_gz(path, magic: int, array) -> None:
    """A file in MNIST's IDX format (big-endian header, then uint8 data), gzipped as the originals are."""
    import gzip
    import struct

    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_comes_from_its_own_mirror_variable(workspace, monkeypatch, tmp_path_factory):
    """Synthetic files in the original format stand in for Fashion-MNIST (not on this machine); torchvision
    unpacks them as it would the real ones, after our md5 check against the (patched) expected sums."""
    import numpy as np
    from torchvision.datasets import FashionMNIST

    from carbon_pipe.artifacts import md5sum
    from carbon_pipe.config.params import DataParams
    from carbon_pipe.pipeline import fetch_data

    mirror = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 12)):
        idx_gz(mirror / f"{prefix}-images-idx3-ubyte.gz", 2051, rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        idx_gz(mirror / f"{prefix}-labels-idx1-ubyte.gz", 2049, rng.integers(0, 10, (count,), dtype=np.uint8))
    monkeypatch.setattr(
        FashionMNIST, "resources", [(name, md5sum(mirror / name)) for name, _ in FashionMNIST.resources]
    )
    monkeypatch.setenv("CARBON_PIPE_FASHIONMNIST_MIRROR", str(mirror))
    monkeypatch.setenv("CARBON_PIPE_DATA_MIRROR", str(workspace / "nowhere"))  # the dataset's own variable wins

    manifest = fetch_data.run_stage(DataParams(dataset="fashion-mnist", train_limit=30)).to_json()
    tensors = torch.load(workspace / "stages/fetch-data/dataset.pt", weights_only=True)
    assert tensors["train_images"].shape == (30, 1, 28, 28) and tensors["test_labels"].shape == (12,)
    assert tensors["classes"][0] == "T-shirt/top" and tensors["mean"].tolist() == pytest.approx([0.2860])
    assert manifest["origin"] == "local mirror (CARBON_PIPE_FASHIONMNIST_MIRROR)"


def test_cifar10_archive_unpacks_to_channels_first_tensors(workspace, monkeypatch, tmp_path_factory):
    """A synthetic cifar-10-python.tar.gz in the original layout: pickled batches of flat R, G, B planes."""
    import hashlib
    import io
    import pickle
    import tarfile

    import numpy as np
    from torchvision.datasets import CIFAR10

    from carbon_pipe.artifacts import md5sum
    from carbon_pipe.config.params import DataParams
    from carbon_pipe.pipeline import fetch_data

    planes = np.concatenate([np.full(1024, value, dtype=np.uint8) for value in (10, 20, 30)])  # R, G, B
    members = {f"data_batch_{i}": {"data": np.stack([planes] * 4), "labels": [i, 0, 1, 2]} for i in range(1, 6)}
    members["test_batch"] = {"data": np.stack([planes] * 3), "labels": [7, 8, 9]}
    members["batches.meta"] = {"label_names": [f"class{i}" for i in range(10)]}
    mirror = tmp_path_factory.mktemp("cifar")
    archive = mirror / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in members.items():
            payload = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    sums = {name: hashlib.md5(pickle.dumps(content)).hexdigest() for name, content in members.items()}
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5sum(archive))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", sums[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", sums["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": sums["batches.meta"]})
    monkeypatch.setenv("CARBON_PIPE_CIFAR10_MIRROR", str(mirror))

    manifest = fetch_data.run_stage(DataParams(dataset="cifar10")).to_json()
    tensors = torch.load(workspace / "stages/fetch-data/dataset.pt", weights_only=True)
    assert tensors["train_images"].shape == (20, 3, 32, 32) and tensors["test_images"].shape == (3, 3, 32, 32)
    assert [tensors["train_images"][0, channel].unique().tolist() for channel in range(3)] == [[10], [20], [30]]
    assert tensors["test_labels"].tolist() == [7, 8, 9] and manifest["num_classes"] == 10
    assert manifest["image_shape"] == [3, 32, 32]


@pytest.mark.slow
def test_wrong_files_in_a_dataset_mirror_are_named(workspace, mnist_mirror, monkeypatch):
    """MNIST's files under Fashion-MNIST's names: the md5 check says whose sums they fail, in one line."""
    params = default_params()
    params["data"].update(dataset="fashion-mnist")
    write_params(workspace, params)
    monkeypatch.setenv("CARBON_PIPE_FASHIONMNIST_MIRROR", str(mnist_mirror))
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "fetch-data"], cwd=workspace, capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match FashionMNIST's" in lines[0]
