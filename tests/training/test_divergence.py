"""A run whose loss turns NaN or infinite stops there, in one line, and no JSON the project writes
holds a NaN or an Infinity (strict readers refuse them, and they mean a number went wrong upstream)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from carbon_pipe import artifacts
from carbon_pipe.cli import app
from carbon_pipe.errors import ArtifactError

from ..conftest import synthetic_dataset, tiny_params, write_params


@pytest.mark.slow
def test_a_diverging_run_stops_at_its_first_non_finite_loss_in_one_line(workspace):
    raw = tiny_params(train={"learning_rate": 1e30, "checkpoint_every": 1, "epochs": 2})
    write_params(workspace, raw)
    synthetic_dataset()
    runner = CliRunner()
    assert runner.invoke(app, ["wait-for-window"]).exit_code == 0
    result = runner.invoke(app, ["train", "--run", "baseline"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("carbon-pipe: error: train baseline: the training loss is not finite (NaN or infinite)")
    assert "try a lower train.learning_rate (now 1e+30)" in line
    bad_step = int(line.split(" at step ")[1].split()[0])
    # Checkpoints come every step, each after the check: the last one saved is the state before the bad step.
    saved = torch.load("stages/train-baseline/resume/checkpoint.pt", weights_only=True)
    assert saved["step"] == bad_step - 1
    assert all(torch.isfinite(weights).all() for weights in saved["model"].values())
    assert not (workspace / "metrics" / "baseline.json").exists()
    assert not (workspace / "stages" / "train-baseline" / "model.pt").exists()
    # compare has nothing to report savings on
    result = runner.invoke(app, ["compare"])
    assert result.exit_code == 1 and "metrics/baseline.json is missing" in result.stderr


@pytest.mark.parametrize(
    "data, key",
    [
        ({"training_metrics": {"final_loss": math.nan}}, "training_metrics.final_loss is nan"),
        ({"chunks": [{"end": 1.0}, {"end": -math.inf}]}, "chunks.1.end is -inf"),
        ([1.0, math.inf], "1 is inf"),
    ],
)
def test_json_with_a_non_finite_number_is_refused_naming_its_key(tmp_path, data, key):
    target = tmp_path / "metrics.json"
    with pytest.raises(ArtifactError) as caught:
        artifacts.write_json(target, data)
    assert str(caught.value) == f"cannot write {target}: {key}, and JSON holds no NaN or Infinity; nothing was written"
    assert not target.exists()
    with pytest.raises(ValueError, match=key):
        artifacts.json_text(data)


def test_finite_json_is_strict_json(tmp_path):
    artifacts.write_json(tmp_path / "ok.json", {"a": [1.5, 0, None, "x"]})
    text = (tmp_path / "ok.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}")) == {"a": [1.5, 0, None, "x"]}
