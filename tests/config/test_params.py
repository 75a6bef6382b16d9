import subprocess
import sys

import pytest

from carbon_pipe.config.params import load_params, parse_params
from carbon_pipe.errors import ParamsError

from ..conftest import committed_params_text, default_params, write_params


def test_committed_params_are_valid(tmp_path):
    (tmp_path / "params.yaml").write_text(committed_params_text())
    params = load_params(tmp_path / "params.yaml")
    assert params.baseline.effective_batch_size == params.optimized.effective_batch_size == 64
    assert params.optimized.gradient_accumulation_steps == 4 and params.optimized.mixed_precision
    assert params.scheduler.clock == "simulated" and params.train.epochs == 6


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["scheduler"].update(max_wait="soon"), "scheduler.max_wait: invalid duration 'soon'"),
        (lambda p: p["optimized"].update(gradient_accumulation_steps=0), "optimized.gradient_accumulation_steps"),
        (lambda p: p.update(schedular=p.pop("scheduler")), "did you mean scheduler?"),
        (lambda p: p["carbon"]["mock"].update(timezone="Mars/Olympus"), "carbon.mock.timezone: unknown time zone"),
        (lambda p: p["scheduler"].update(now="2025-01-15T18:00:00"), "scheduler.now: time"),
        (lambda p: p["scheduler"].update(rule="greedy"), "scheduler.rule"),
        (lambda p: p["baseline"].update(batch_size="big"), "baseline.batch_size"),
        (lambda p: p["scheduler"].update(now=None), "scheduler.now: required"),
    ],
)
def test_bad_params_name_the_key(edit, message):
    raw = default_params()
    edit(raw)
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    assert message in str(caught.value)
    assert all(line.startswith("params.yaml: ") for line in str(caught.value).splitlines())


@pytest.mark.slow
def test_cli_bad_params_exit_2_with_one_line_and_writes_nothing(tmp_path):
    raw = default_params()
    raw["scheduler"]["threshold"] = -5
    write_params(tmp_path, raw)
    before = set(tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "wait-for-window", "--params", "params.yaml"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: params.yaml: scheduler.threshold: Input should be greater than or equal to 0"
    ]
    assert set(tmp_path.rglob("*")) == before


def test_invalid_yaml_reports_the_line(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\ndata: [unclosed\n")
    with pytest.raises(ParamsError, match=r"invalid YAML at line \d+"):
        load_params(tmp_path / "params.yaml")


def test_schema_defaults_match_the_committed_params(tmp_path):
    """Deleting a key from params.yaml must not silently change the experiment; and the tests, which run on the
    schema's defaults (never the working copy an experiment rewrites), run on what is committed."""
    (tmp_path / "params.yaml").write_text(committed_params_text())
    params = load_params(tmp_path / "params.yaml")
    for name in ("data", "model", "carbon", "train", "energy", "profile", "command"):
        section = getattr(params, name)
        assert type(section)() == section, name
    # The repository's pipeline runs on the simulated clock; without a params file the default is the real one.
    assert type(params.scheduler)(clock="simulated", now=params.scheduler.now) == params.scheduler
    assert params.seed == type(params).model_fields["seed"].default
    for name in ("baseline", "optimized"):
        assert getattr(params, name) == type(getattr(params, name))(), name
    assert parse_params(default_params()) == params
