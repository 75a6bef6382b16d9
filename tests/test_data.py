"""fetch-data from a local mirror: md5 checks, subsets, and one-line errors."""

import json
import shutil
import subprocess
import sys

import torch

from .conftest import default_params, write_params


def fetch(workspace, env_mirror, monkeypatch):
    monkeypatch.setenv("CARBON_PIPE_DATA_MIRROR", str(env_mirror))
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "fetch-data", "--params", "params.yaml"],
        cwd=workspace, capture_output=True, text=True,
    )


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
    assert not list((workspace / "stages/fetch-data").glob(".download-*"))  # the unpack folder is gone


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


def test_missing_mirror_folder_names_the_variable(workspace, monkeypatch):
    write_params(workspace, default_params())
    result = fetch(workspace, workspace / "nowhere", monkeypatch)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: CARBON_PIPE_DATA_MIRROR={workspace / 'nowhere'}: no such folder "
        "(it should hold the four MNIST .gz files)"
    ]
