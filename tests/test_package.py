"""The installed tool's front door: `--version`, shell completion, and the built-in trainer's commands saying in
one line what to install when torch is missing (the `train` extra)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import carbon_pipe


def carbon_pipe_cli(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_version_prints_the_packages_version():
    result = carbon_pipe_cli("--version")
    assert result.returncode == 0 and result.stdout == f"carbon-pipe {carbon_pipe.__version__}\n"


@pytest.mark.slow
def test_bash_completion_completes_commands_and_options():
    env = {**os.environ, "_CARBON_PIPE_COMPLETE": "complete_bash", "COMP_WORDS": "carbon-pipe pl", "COMP_CWORD": "1"}
    as_installed = [sys.executable, "-c", "from carbon_pipe.cli import app; app(prog_name='carbon-pipe')"]
    commands = subprocess.run(as_installed, capture_output=True, text=True, env=env)
    assert commands.stdout.split() == ["plan"]
    env.update(COMP_WORDS="carbon-pipe plan --max", COMP_CWORD="2")
    options = subprocess.run(as_installed, capture_output=True, text=True, env=env)
    assert options.stdout.split() == ["--max-wait"]


@pytest.mark.slow
@pytest.mark.parametrize("command", [["train"], ["fetch-data"], ["profile"]])
def test_the_built_in_trainer_without_torch_says_what_to_install(tmp_path, command):
    (tmp_path / "torch.py").write_text("raise ImportError('no torch here', name='torch')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    result = carbon_pipe_cli(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"carbon-pipe: error: {command[0]} is the built-in trainer's and needs torch: pip install "
        "'carbon-pipe[train]' (CPU-only: pip install torch torchvision --index-url "
        "https://download.pytorch.org/whl/cpu first)"
    ]
