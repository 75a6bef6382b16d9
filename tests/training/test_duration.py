"""Scheduler.expected_duration: auto for the user's own data, whose size only fetch-data knows; and the fetch-data
help naming the mirror variable the README teaches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from carbon_pipe.cli import app
from carbon_pipe.config.params import parse_params
from carbon_pipe.datasets.manifest import DataManifest
from carbon_pipe.pipeline import fetch_data
from carbon_pipe.training.duration import expected_duration

from ..conftest import REPO, default_params
from ..datasets.test_folder import folder
from .test_run_summary import summary


def write_last_run(workspace) -> None:
    """metrics/optimized.json as train writes it, of a run that took 100 ms per sample (20 s, 2 epochs x 100)."""
    last = summary("optimized")
    training = last.training_metrics.model_copy(update={"total_time_seconds": 20.0, "epochs": 2, "train_samples": 100})
    (workspace / "metrics").mkdir(exist_ok=True)
    completed = last.model_copy(update={"training_metrics": training})
    (workspace / "metrics/optimized.json").write_text(json.dumps(completed.to_json()))


def write_manifest(workspace, source: dict, available) -> None:
    """stages/fetch-data/manifest.json as fetch-data writes it for own data."""
    manifest = DataManifest(dataset=source["dataset"], origin="test", train_samples=10, test_samples=0,
                            image_shape=[1, 4, 4], num_classes=2, dtype="uint8", source=source, md5="0" * 32)
    (workspace / "stages/fetch-data").mkdir(parents=True, exist_ok=True)
    record = {**manifest.to_json(), "train_samples_available": available}
    (workspace / "stages/fetch-data/manifest.json").write_text(json.dumps(record))


def auto_params(**data):
    raw = default_params()
    raw["scheduler"].update(expected_duration="auto", fallback_duration="7min")
    raw["train"].update(epochs=3)
    raw["data"].update(data)
    return parse_params(raw)


def test_auto_sizes_an_image_folder_from_the_last_fetch_data(workspace):
    folder(workspace / "images", split=False, per_class={"cat": (10, 0), "dog": (10, 0)})
    write_last_run(workspace)
    params = auto_params(dataset="folder", path="images", test_fraction=0.3)
    before = expected_duration(params)
    assert before.source == "fallback" and before.seconds == 420 and "manifest.json is missing" in before.basis

    fetch_data.run_stage(params.data)  # 7 of each class for training
    estimate = expected_duration(params)
    assert estimate.source == "estimated" and estimate.seconds == pytest.approx(0.1 * 14 * 3)
    assert "stages/fetch-data/manifest.json" in estimate.basis
    limited = expected_duration(auto_params(dataset="folder", path="images", test_fraction=0.3, train_limit=5))
    assert limited.seconds == pytest.approx(0.1 * 5 * 3)

    other = expected_duration(auto_params(dataset="folder", path="images", test_fraction=0.5))  # not fetched yet
    assert other.source == "fallback" and "written for other data" in other.basis


def test_auto_sizes_a_data_class_dataset_from_the_last_fetch_data(workspace, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (workspace / "duration_data.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n\n"
        "def make():\n    return TensorDataset(torch.rand(30, 1, 4, 4), torch.arange(30) % 2), "
        "TensorDataset(torch.rand(6, 1, 4, 4), torch.arange(6) % 2)\n"
    )
    write_last_run(workspace)
    params = auto_params(dataset="custom", **{"class": "duration_data:make"})
    try:
        fetch_data.run_stage(params.data)
    finally:
        sys.modules.pop("duration_data", None)
    assert expected_duration(params).seconds == pytest.approx(0.1 * 30 * 3)


@pytest.mark.parametrize("available, says", [
    ("fifty", "stages/fetch-data/manifest.json: not a manifest fetch-data wrote (train_samples_available is 'fifty'"),
    (None, "records no train_samples_available"),
])
def test_auto_falls_back_on_a_manifest_without_a_usable_split_size(workspace, available, says):
    write_manifest(workspace, {"dataset": "folder", "path": "images", "test_fraction": 0.2}, available)
    write_last_run(workspace)
    estimate = expected_duration(auto_params(dataset="folder", path="images", test_fraction=0.2))
    assert estimate.source == "fallback" and says in estimate.basis


@pytest.mark.slow
def test_auto_for_own_data_imports_neither_torch_nor_pillow(workspace):
    """Wait-for-window stays light: the manifest is JSON."""
    (workspace / "stages/fetch-data").mkdir(parents=True)
    write_manifest(workspace, {"dataset": "folder", "path": "images", "test_fraction": 0.2}, 50)
    write_last_run(workspace)
    raw = default_params()
    raw["scheduler"].update(expected_duration="auto")
    raw["data"].update(dataset="folder", path="images")
    raw["train"].update(epochs=3)
    (workspace / "params.yaml").write_text(json.dumps(raw))
    script = (
        "import sys\nfrom carbon_pipe.config.params import load_params\n"
        "from carbon_pipe.pipeline import wait_for_window\n"
        "from carbon_pipe.training.duration import expected_duration\n"
        "estimate = expected_duration(load_params('params.yaml'))\n"
        "print(estimate.seconds, 'torch' in sys.modules, 'PIL' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=workspace, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    seconds, torch_loaded, pillow_loaded = result.stdout.split()
    assert float(seconds) == pytest.approx(0.1 * 50 * 3) and (torch_loaded, pillow_loaded) == ("False", "False")


def test_fetch_data_help_names_the_variable_the_readme_teaches():
    """The help said $CARBON_PIPE_MNIST_MIRROR, the README CARBON_PIPE_DATA_MIRROR."""
    from carbon_pipe.datasets.torchvision import GENERIC_MIRROR_ENV

    help_text = " ".join(CliRunner().invoke(app, ["fetch-data", "--help"], terminal_width=200).output.split())
    assert f"${GENERIC_MIRROR_ENV}" in help_text and "MNIST_MIRROR" not in help_text
    assert f'{GENERIC_MIRROR_ENV}="$PWD/../shared' in (REPO / "README.md").read_text()
