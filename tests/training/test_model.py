"""Model.class and model.kwargs: any nn.Module by import path, and one clear line when it does not fit."""

import subprocess
import sys

import pytest
import torch

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import ModelError
from carbon_pipe.pipeline import wait_for_window
from carbon_pipe.training.model import SimpleCNN, build_model, check_fits, load_model_class

from ..conftest import synthetic_dataset, tiny_params, write_params

MNIST_SHAPE = (1, 28, 28)


@pytest.mark.parametrize(
    "class_path, message",
    [
        ("no_such_package.models:Net", "model.class: cannot import 'no_such_package.models' (ModuleNotFoundError: "),
        ("carbon_pipe.training.model:ResNet", "model.class: module 'carbon_pipe.training.model' has no 'ResNet'"),
        (
            "carbon_pipe.training.model:DATASET_ARGUMENTS",
            "model.class: carbon_pipe.training.model:DATASET_ARGUMENTS is not a torch.nn.Module subclass",
        ),
    ],
)
def test_import_problems_are_one_line(class_path, message):
    with pytest.raises(ModelError) as error:
        load_model_class(class_path)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_dataset_shape_is_offered_to_constructors_that_name_it():
    model = build_model("carbon_pipe.training.model:SimpleCNN", {"hidden": 20}, (3, 32, 32), 100)
    assert model.features[0].in_channels == 3 and model.classifier[-1].out_features == 100
    assert model.classifier[1].in_features == 64 * 8 * 8 and model.classifier[1].out_features == 20
    check_fits(model, torch.zeros(2, 3, 32, 32), 100, "carbon_pipe.training.model:SimpleCNN", "cifar10")


def test_unknown_kwarg_names_the_key():
    with pytest.raises(
        ModelError, match=r"^model.kwargs: carbon_pipe.training.model:SimpleCNN: .*unexpected keyword argument 'depth'"
    ):
        build_model("carbon_pipe.training.model:SimpleCNN", {"depth": 3}, MNIST_SHAPE, 10)


@pytest.mark.parametrize(
    "width, message", [(-1, "negative dimension"), (2.5, "out_channels must be divisible by groups")]
)
def test_kwargs_the_layers_refuse_are_one_line_naming_them(width, message):
    """A ValueError or RuntimeError from the constructor, not only a TypeError, is one line."""
    with pytest.raises(ModelError) as error:
        build_model("carbon_pipe.training.model:SimpleCNN", {"width": width}, MNIST_SHAPE, 10)
    text = str(error.value)
    assert text.startswith("model.kwargs: carbon_pipe.training.model:SimpleCNN: ") and "\n" not in text
    assert message in text and text.endswith(f"(model.kwargs: width={width})")


def test_a_model_for_other_images_fails_its_first_batch_in_one_line():
    model = build_model(
        "carbon_pipe.training.model:SimpleCNN", {"image_size": 32}, MNIST_SHAPE, 10
    )  # sized for 32x32 input
    with pytest.raises(ModelError) as error:
        check_fits(model, torch.zeros(2, *MNIST_SHAPE), 10, "carbon_pipe.training.model:SimpleCNN", "mnist")
    assert str(error.value).startswith(
        "model.class: carbon_pipe.training.model:SimpleCNN does not fit mnist images of shape (1, 28, 28): "
        "mat1 and mat2"
    )


EXITING = """
import sys
from torch import nn

class ExitsWhenBuilt(nn.Module):
    def __init__(self):
        sys.exit(0)

class ExitsWhenCalled(nn.Module):
    def forward(self, images):
        raise SystemExit("done")

class InterruptsItself(nn.Module):
    def forward(self, images):
        raise KeyboardInterrupt
"""


def test_a_model_that_exits_or_interrupts_itself_is_one_line(workspace, monkeypatch):
    monkeypatch.syspath_prepend(str(workspace))
    (workspace / "exiting_models.py").write_text(EXITING)
    with pytest.raises(ModelError, match=r"^model.class: exiting_models:ExitsWhenBuilt called sys.exit\(0\): "):
        build_model("exiting_models:ExitsWhenBuilt", {}, MNIST_SHAPE, 10)
    for name, message in (("ExitsWhenCalled", "called sys.exit('done')"), ("InterruptsItself", "no Ctrl-C pressed")):
        model = build_model(f"exiting_models:{name}", {}, MNIST_SHAPE, 10)
        with pytest.raises(ModelError, match=f"^model.class: exiting_models:{name} ") as error:
            check_fits(model, torch.zeros(2, *MNIST_SHAPE), 10, f"exiting_models:{name}", "mnist")
        assert message in str(error.value)


def test_an_exit_from_your_code_later_in_a_stage_is_one_line_not_a_success(capsys):
    import typer

    from carbon_pipe.cli.common import run_or_exit

    with pytest.raises(typer.Exit) as exited:
        run_or_exit(lambda: sys.exit(0))
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err.strip() == (
        "carbon-pipe: error: your code called sys.exit(0) inside the stage, which was not completed"
    )


def test_wrong_number_of_logits_is_named():
    model = SimpleCNN(num_classes=7)
    with pytest.raises(
        ModelError, match=r"returns \(2, 7\) for a batch of 2 mnist images; expected logits of shape \(2, 10\)"
    ):
        check_fits(model, torch.zeros(2, *MNIST_SHAPE), 10, "carbon_pipe.training.model:SimpleCNN", "mnist")


@pytest.mark.slow
def test_cli_reports_a_bad_model_in_one_line_and_writes_nothing(workspace):
    """A model module in the project folder is importable by the console script; its failure is one line, exit 2."""
    (workspace / "project_models.py").write_text(
        "from torch import nn\n\n"
        "class Wide(nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__()\n"
        "        self.layer = nn.Linear(999, num_classes)\n\n"
        "    def forward(self, images):\n"
        "        return self.layer(images.flatten(1))\n"
    )
    params = tiny_params(model={"class": "project_models:Wide"})
    write_params(workspace, params)
    synthetic_dataset(train=64, test=32)
    wait_for_window.run_stage(parse_params(params), say=lambda line: None)
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "baseline"],
        cwd=workspace,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: model.class: project_models:Wide does not fit synthetic images of shape (1, 28, 28): "
        "mat1 and mat2 shapes cannot be multiplied (2x784 and 999x10)"
    ]
    assert not (workspace / "stages/train-baseline").exists() and not (workspace / "metrics/baseline.json").exists()
