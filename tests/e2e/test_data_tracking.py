"""DVC sees the data fetch-data reads: dvc.yaml names `${data.path}` in its deps, so an image added, changed or
removed makes the stage changed, `dvc repro` reads the folder again, and `dvc exp run -S data.path=...` follows the
new folder; with the default MNIST params it names the repository's data/images, which exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ..conftest import MNIST_RAW, REPO, VENV_BIN, tiny_params, write_params
from ..datasets.test_folder import folder, png

MANIFEST = "stages/fetch-data/manifest.json"


def dvc(project, *args) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fetch_data_status(project) -> list:
    return json.loads(dvc(project, "status", "fetch-data", "--json")).get("fetch-data", [])


def git(project, *args) -> None:
    command = ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args]
    subprocess.run(command, cwd=project, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The repository's dvc.yaml and code in a fresh git + DVC project, the default data/images folder included."""
    folder_ = tmp_path / "project"
    shutil.copytree(REPO / "carbon_pipe", folder_ / "carbon_pipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "data", folder_ / "data")
    shutil.copytree(REPO / ".dvc", folder_ / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, folder_)
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("PYTHONPATH", str(folder_))  # the stages run this copy's code
    git(folder_, "init", "-q")
    return folder_


def manifest(project) -> dict:
    return json.loads((project / MANIFEST).read_text())


@pytest.mark.slow
def test_an_added_changed_or_removed_image_reruns_fetch_data_and_exp_run_follows_a_new_path(project):
    folder(project / "data/images")
    folder(project / "data/other", per_class={"cat": (3, 1), "dog": (3, 1)})
    data = {"dataset": "folder", "path": "data/images", "train_limit": None, "test_limit": None}
    write_params(project, tiny_params(data=data))
    dvc(project, "repro", "fetch-data")
    assert fetch_data_status(project) == [] and manifest(project)["train_samples"] == 10
    changed = [{"changed deps": {"data/images": "modified"}}]

    png(project / "data/images/train/cat/00.png", (0, 0, 255))  # changed
    assert fetch_data_status(project) == changed
    dvc(project, "repro", "fetch-data")
    assert fetch_data_status(project) == [] and manifest(project)["train_samples"] == 10

    png(project / "data/images/train/dog/99.png", (7, 7, 7))  # added
    assert fetch_data_status(project) == changed
    dvc(project, "repro", "fetch-data")
    assert manifest(project)["train_samples"] == 11

    (project / "data/images/train/dog/99.png").unlink()  # removed
    assert fetch_data_status(project) == changed
    dvc(project, "repro", "fetch-data")
    assert manifest(project)["train_samples"] == 10 and fetch_data_status(project) == []

    git(project, "add", "-A")
    git(project, "commit", "-qm", "images")
    dvc(project, "exp", "run", "fetch-data", "-S", "data.path=data/other")
    assert manifest(project)["origin"] == "image folder data/other" and manifest(project)["train_samples"] == 6
    assert fetch_data_status(project) == []
    png(project / "data/other/test/dog/03.png", (1, 2, 3))
    assert fetch_data_status(project) == [{"changed deps": {"data/other": "modified"}}]


@pytest.mark.slow
def test_the_default_mnist_params_name_a_folder_that_exists(project, monkeypatch, mnist_mirror):
    monkeypatch.setenv("CARBON_PIPE_DATA_MIRROR", str(MNIST_RAW))
    params = tiny_params(data={"train_limit": 64, "test_limit": 32})
    assert params["data"]["dataset"] == "mnist" and params["data"]["path"] == "data/images"
    write_params(project, params)
    dvc(project, "repro", "fetch-data")
    assert fetch_data_status(project) == [] and manifest(project)["dataset"] == "mnist"
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["fetch-data"]
    assert "data/images" in [dep["path"] for dep in lock["deps"]]
