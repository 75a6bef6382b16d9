"""examples/image-folder as a user runs it: copied out, images generated, `dvc repro` with the installed
carbon-pipe; then one edited image makes `dvc status` show fetch-data changed, and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from ..conftest import REPO, VENV_BIN

EXAMPLE = REPO / "examples" / "image-folder"


def run(project, *command):
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def dvc_status(project) -> dict:
    return json.loads(run(project, "dvc", "status", "--json"))


def test_the_main_project_does_not_see_the_example():
    """examples/ is in .dvcignore: the main `dvc repro` must not run (or fail on) the example's stages."""
    stages = run(REPO, "dvc", "stage", "list", "--all", "--name-only").split()
    assert stages == ["fetch-data", "wait-for-window", "train-baseline", "train-optimized", "compare"]


@pytest.mark.slow
def test_the_image_folder_example_runs_and_sees_a_changed_image(tmp_path):
    project = tmp_path / "my-images"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "stages", "metrics", "dvc.lock"))
    run(project, sys.executable, "make_images.py")
    run(project, "git", "init", "-q")
    run(project, "dvc", "init", "-q")
    run(project, "dvc", "repro")

    manifest = json.loads((project / "stages/fetch-data/manifest.json").read_text())
    counts = {"train": 40, "test": 10}
    assert manifest["files_per_class"] == {"horizontal": counts, "vertical": counts}
    assert manifest["image_shape"] == [3, 16, 16] and manifest["origin"] == "image folder data/images"
    baseline = json.loads((project / "metrics/baseline.json").read_text())
    assert baseline["dataset"] == "data/images (folder)" and baseline["training_metrics"]["train_samples"] == 80
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert summary["baseline_accuracy_pct"] > 90 and summary["optimized_wait_h"] > 0
    assert "**total measured reduction**" in (project / "stages/compare/report.md").read_text()
    assert dvc_status(project) == {}

    edited = project / "data/images/train/vertical/000.png"
    with Image.open(edited) as image:
        pixels = image.copy()
    middle = pixels.width // 2
    pixels.paste((0, 0, 0), (middle - 2, middle - 2, middle + 2, middle + 2))  # a black square where the band crosses
    pixels.save(edited)
    assert dvc_status(project) == {"fetch-data": [{"changed deps": {"data/images": "modified"}}]}

    run(project, "dvc", "repro", "fetch-data")
    refetched = json.loads((project / "stages/fetch-data/manifest.json").read_text())
    assert refetched["files_md5"] != manifest["files_md5"] and refetched["md5"] != manifest["md5"]
    assert set(dvc_status(project)) == {"train-baseline", "train-optimized"}  # the new dataset.pt is theirs to train on
