"""What the benchmarks share: a scratch project holding MNIST and the scheduler's outputs, as `dvc repro` leaves it."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))  # carbon_pipe from this checkout, installed or not
MIRROR_VARIABLES = ("CARBON_PIPE_MNIST_MIRROR", "CARBON_PIPE_DATA_MIRROR")
MIRROR_GUESSES = (REPO.parent / "shared/data/mnist/MNIST/raw", REPO / "shared/data/mnist/MNIST/raw")


def mnist_mirror() -> str | None:
    """The MNIST mirror folder: a mirror variable if set, else the shared folder beside or inside the checkout."""
    for variable in MIRROR_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return next((str(path) for path in MIRROR_GUESSES if path.is_dir()), None)


def project_params(**sections: dict) -> dict:
    """The repository's params.yaml with some keys of some sections replaced."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        params[name].update(values)
    return params


@contextlib.contextmanager
def scratch_project(params: dict, prefix: str) -> Iterator[Path]:
    """A temporary project folder, as the working directory, holding the fetch-data and wait-for-window outputs."""
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.pipeline import fetch_data, wait_for_window

    mirror = mnist_mirror()
    if mirror:
        os.environ.setdefault("CARBON_PIPE_MNIST_MIRROR", mirror)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    previous = Path.cwd()
    os.chdir(folder)
    try:
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        config = parse_params(params)
        fetch_data.run_stage(config.data)
        wait_for_window.run_stage(config, say=lambda line: None)
        yield folder
    finally:
        os.chdir(previous)
        shutil.rmtree(folder, ignore_errors=True)
