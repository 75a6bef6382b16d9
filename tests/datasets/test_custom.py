"""data.dataset custom: a function's (train, test) torch Datasets become dataset.pt and train end to end; every
way the function can go wrong is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from carbon_pipe.cli import app

from ..conftest import tiny_params, write_params

STRIPES = '''
import torch
from torch.utils.data import Dataset


class Stripes(Dataset):
    """8-bit images handed out as ToTensor would (floats k / 255): a bright row band for "horizontal", a column
    band for "vertical"."""

    classes = ["horizontal", "vertical"]

    def __init__(self, count, seed):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (count,), generator=generator)
        self.pixels = torch.randint(0, 60, (count, 1, 12, 12), dtype=torch.uint8, generator=generator)
        for image, label in zip(self.pixels, self.labels):
            (image[:, 4:8, :] if label == 0 else image[:, :, 4:8]).add_(180)
        self.images = self.pixels.float() / 255

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


def make():
    return Stripes(96, 0), Stripes(40, 1)
'''


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", *args], cwd=workspace, capture_output=True, text=True
    )


@pytest.mark.slow
def test_a_data_class_function_trains_end_to_end(workspace):
    (workspace / "my_data.py").write_text(STRIPES)
    write_params(workspace, tiny_params(data={"dataset": "custom", "class": "my_data:make", "train_limit": None}))
    fetched = cli(workspace, "fetch-data")
    assert fetched.returncode == 0, fetched.stderr
    data = torch.load(workspace / "stages/fetch-data/dataset.pt", weights_only=True)
    sys.path.insert(0, str(workspace))
    try:
        from my_data import make  # the same function, to compare what was stored with what it returns
    finally:
        sys.path.remove(str(workspace))
        sys.modules.pop("my_data", None)
    train, test = make()
    assert torch.equal(data["train_images"], train.pixels)  # floats k / 255 come back as exactly k
    assert torch.equal(data["test_labels"], test.labels) and data["classes"] == ["horizontal", "vertical"]
    manifest = json.loads((workspace / "stages/fetch-data/manifest.json").read_text())
    assert manifest["origin"] == "data.class my_data:make" and manifest["train_samples_available"] == 96
    assert manifest["images_given_as"].startswith("floating point in [0, 1]") and manifest["image_shape"] == [1, 12, 12]
    assert manifest["samples_per_class"]["train"] == {
        "horizontal": int((train.labels == 0).sum()),
        "vertical": int((train.labels == 1).sum()),
    }
    for command in (["wait-for-window"], ["train", "--run", "baseline"]):
        result = cli(workspace, *command)
        assert result.returncode == 0, result.stderr
    summary = json.loads((workspace / "metrics/baseline.json").read_text())
    assert summary["dataset"] == "my_data:make (data.class)" and summary["training_metrics"]["train_samples"] == 96


@pytest.fixture
def module(workspace, monkeypatch, request):
    """Write a data module under a name of its own (imports are cached per process) and forget it afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = "data_" + "".join(c if c.isalnum() else "_" for c in request.node.name)

    def write(source: str) -> str:
        (workspace / f"{name}.py").write_text(
            "import torch\nfrom torch.utils.data import TensorDataset\n" + textwrap.dedent(source)
        )
        return name

    yield write
    sys.modules.pop(name, None)


def images(count=4, shape=(1, 8, 8)):
    return (
        f"torch.zeros({count}, {', '.join(map(str, shape))}, dtype=torch.uint8) "
        f"+ torch.arange({count}, dtype=torch.uint8).view(-1, 1, 1, 1)"
    )


GOOD_TEST = f"TensorDataset({images()}, torch.tensor([0, 1, 0, 1]))"
CASES = [
    (
        "no-module",
        None,
        "make",
        "data.class: cannot import 'no_such_data_module' (ModuleNotFoundError: No module named 'no_such_data_module')",
    ),
    ("import-fails", "1 / 0\n", "make", "(ZeroDivisionError: division by zero)"),
    ("no-function", "", "make", "has no function 'make'"),
    (
        "function-raises",
        "def make():\n    raise ValueError('no data today')\n",
        "make",
        ":make raised ValueError: no data today",
    ),
    (
        "one-dataset",
        f"def make():\n    return {GOOD_TEST}\n",
        "make",
        ":make returned a TensorDataset; expected a pair (train, test) of torch Datasets",
    ),
    (
        "three-datasets",
        f"def make():\n    return {GOOD_TEST}, {GOOD_TEST}, {GOOD_TEST}\n",
        "make",
        "returned a tuple of 3; expected a pair (train, test)",
    ),
    (
        "not-indexable",
        f"def make():\n    return (x for x in []), {GOOD_TEST}\n",
        "make",
        "the train dataset is a generator, without len() and indexing",
    ),
    ("empty-test", f"def make():\n    return {GOOD_TEST}, []\n", "make", "the test dataset is empty"),
    (
        "sample-not-a-pair",
        f"def make():\n    return [torch.zeros(1, 8, 8)], {GOOD_TEST}\n",
        "make",
        "the train dataset sample 0 is a Tensor; expected a pair (image, label)",
    ),
    (
        "feature-vectors",
        f"def make():\n    return TensorDataset(torch.rand(4, 20), torch.tensor([0, 1, 0, 1])), {GOOD_TEST}\n",
        "make",
        "the train dataset sample 0: shape (20,); expected an image (C, H, W) or (H, W)",
    ),
    (
        "mixed-shapes",
        f"def make():\n    return [(torch.zeros(1, 8, 8), 0), (torch.zeros(1, 8, 9), 1)], {GOOD_TEST}\n",
        "make",
        "the train dataset sample 1 has shape (1, 8, 9), sample 0 (1, 8, 8): every sample needs one shape",
    ),
    (
        "normalised-floats",
        "def make():\n    return TensorDataset(torch.linspace(-1, 1, 256).view(4, 1, 8, 8), "
        f"torch.tensor([0, 1, 0, 1])), {GOOD_TEST}\n",
        "make",
        "the train dataset sample 0: values from -1 to -0.5059; floating-point images must lie in [0, 1]",
    ),
    (
        "int64-images",
        "def make():\n    return TensorDataset(torch.zeros(4, 1, 8, 8, dtype=torch.int64), "
        f"torch.tensor([0, 1, 0, 1])), {GOOD_TEST}\n",
        "make",
        "dtype torch.int64; expected uint8, or floating point in [0, 1]",
    ),
    (
        "text-label",
        f"def make():\n    return [(torch.zeros(1, 8, 8), 'cat')], {GOOD_TEST}\n",
        "make",
        "the train dataset sample 0: label 'cat' (str); expected an int from 0",
    ),
    (
        "label-beyond-classes",
        f"def make():\n    train = TensorDataset({images()}, torch.tensor([0, 1, 2, 0]))\n"
        f"    train.classes = ['a', 'b']\n    return train, {GOOD_TEST}\n",
        "make",
        "label 2, but the train dataset's classes names only 2",
    ),
    (
        "test-shape-differs",
        f"def make():\n    return TensorDataset({images(shape=(3, 8, 8))}, torch.tensor([0, 1, 0, 1])), {GOOD_TEST}\n",
        "make",
        "test images have shape (1, 8, 8), train images (3, 8, 8): both splits need one shape",
    ),
    (
        "getitem-fails",
        "class Broken(torch.utils.data.Dataset):\n    def __len__(self):\n        return 3\n"
        "    def __getitem__(self, index):\n        raise KeyError(index)\n"
        "def make():\n    return Broken(), Broken()\n",
        "make",
        "the train dataset sample 0: KeyError: 0",
    ),
    # Exits from your code would end fetch-data with success and nothing written (the old dataset.pt left for DVC).
    ("exits", "import sys\ndef make():\n    sys.exit()\n", "make", "called sys.exit(None): your code must return"),
    ("exits-at-import", "import sys\nsys.exit(0)\ndef make():\n    pass\n", "make", "called sys.exit(0)"),
    (
        "exits-from-a-dataset",
        "import sys\nclass Quits(torch.utils.data.Dataset):\n    def __len__(self):\n        sys.exit(3)\n"
        "def make():\n    return Quits(), Quits()\n",
        "make",
        "called sys.exit(3)",
    ),
    (
        "interrupts-itself",
        "def make():\n    raise KeyboardInterrupt\n",
        "make",
        "raised KeyboardInterrupt with no Ctrl-C pressed: raise an Exception instead",
    ),
    (
        "a-base-exception",
        "class Stop(BaseException):\n    pass\ndef make():\n    raise Stop()\n",
        "make",
        "raised Stop, which is not an Exception",
    ),
]


@pytest.mark.parametrize("source, function, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_data_class_is_one_line_and_writes_nothing(workspace, module, source, function, expected):
    name = "no_such_data_module" if source is None else module(source)
    write_params(
        workspace,
        tiny_params(data={"dataset": "custom", "class": f"{name}:{function}", "train_limit": None, "test_limit": None}),
    )
    before = set(workspace.rglob("*"))
    result = CliRunner().invoke(app, ["fetch-data"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr or result.output
    assert len(lines) == 1 and lines[0].startswith("carbon-pipe: error: data.class: ") and expected in lines[0], lines
    assert {path for path in set(workspace.rglob("*")) - before if "__pycache__" not in path.parts} == set()


@pytest.mark.slow
@pytest.mark.parametrize("function", ["sys:exit", "builtins:exit", "builtins:quit"])
def test_a_data_class_that_is_an_exit_is_refused_in_one_line(workspace, function):
    write_params(workspace, tiny_params(data={"dataset": "custom", "class": function}))
    result = cli(workspace, "fetch-data")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"carbon-pipe: error: data.class: {function} called sys.exit(None): your code must return or raise, not exit"
    )
    assert not (workspace / "stages").exists()


def test_pil_images_and_uint8_tensors_are_taken_as_they_are(workspace, module):
    name = module(
        """
        from PIL import Image

        def make():
            colour = [(Image.new("RGB", (6, 6), (10 * i, 5, 200)), i % 2) for i in range(4)]
            return colour, [(torch.full((3, 6, 6), 7, dtype=torch.uint8), 1)]
        """
    )
    write_params(
        workspace,
        tiny_params(data={"dataset": "custom", "class": f"{name}:make", "train_limit": None, "test_limit": None}),
    )
    result = CliRunner().invoke(app, ["fetch-data"])
    assert result.exit_code == 0, result.stderr
    data = torch.load(workspace / "stages/fetch-data/dataset.pt", weights_only=True)
    assert data["train_images"][:, :, 0, 0].tolist() == [[0, 5, 200], [10, 5, 200], [20, 5, 200], [30, 5, 200]]
    assert data["classes"] == ["0", "1"] and data["test_images"].unique().tolist() == [7]
    # Channels 1 and 2 do not vary: they get std 1 instead of a division by zero.
    assert data["std"][1:].tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"dataset": "custom"}, "data.class: required when data.dataset is custom"),
        (
            {"dataset": "custom", "class": "my_data.make"},
            "data.class: expected 'package.module:function', got 'my_data.make'",
        ),
        (
            {"dataset": "mnist", "class": "my_data:make"},
            "data.class: only read when data.dataset is custom (it is mnist)",
        ),
    ],
)
def test_data_class_params_are_checked_before_any_work(workspace, data, expected):
    write_params(workspace, tiny_params(data=data))
    result = CliRunner().invoke(app, ["fetch-data"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: params.yaml: {expected}"
    ]
