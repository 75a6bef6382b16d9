"""The CLI's front: `--help` stays light, OpenMP threads sleep while they wait, a bad `--run` is one line, and
`intensity` and `plan` say which clock's "now" they show and take `--clock` and `--now`."""

import json
import subprocess
import sys
import time

import pytest


def test_help_does_not_import_torch():
    probe = (
        "import sys\n"
        "from carbon_pipe.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'codecarbon', 'pandas', 'torchvision', 'numpy', 'matplotlib')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout
    for command in ("fetch-data", "wait-for-window", "train", "compare", "backtest", "workload"):
        assert command in result.stdout


@pytest.mark.slow
def test_train_rejects_unknown_run(tmp_path):
    from ..conftest import default_params, write_params

    write_params(tmp_path, default_params())
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "fastest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--run: expected baseline or optimized, got 'fastest'" in result.stderr


@pytest.mark.parametrize("chosen, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_while_waiting_unless_the_user_chose(monkeypatch, tmp_path, chosen, expected):
    import os

    if chosen is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", chosen)
    result = invoke("fetch-data", "--params", str(tmp_path / "absent.yaml"))
    assert result.exit_code != 0  # the command failed, yet the environment was set before it ran
    assert os.environ["OMP_WAIT_POLICY"] == expected


SIMULATED_HINT = (
    "simulated clock: now is 2025-01-15T18:00:00.000000Z (scheduler.now, or --now), not the wall clock's time; "
    "--clock real looks from the wall clock"
)


def invoke(*args: str):
    from typer.testing import CliRunner

    from carbon_pipe.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def simulated_project(workspace):
    """The tests' params: scheduler.clock simulated, now 2025-01-15T18:00:00+00:00."""
    from ..conftest import default_params, write_params

    write_params(workspace, default_params())
    return workspace


@pytest.mark.parametrize("command", ["intensity", "plan"])
def test_on_the_simulated_clock_the_output_says_now_is_the_clocks_not_the_wall_clocks(simulated_project, command):
    assert invoke(command).stdout.strip().splitlines()[-1] == SIMULATED_HINT
    shown = json.loads(invoke(command, "--json").stdout)
    assert (shown["clock"], shown["now"]) == ("simulated", "2025-01-15T18:00:00.000000Z")


@pytest.mark.parametrize("command", ["intensity", "plan"])
def test_clock_real_looks_from_the_wall_clock_and_drops_the_hint(simulated_project, command):
    from carbon_pipe.timeutil import parse_instant

    before = time.time()
    shown = json.loads(invoke(command, "--json", "--clock", "real").stdout)
    assert shown["clock"] == "real" and before <= parse_instant(shown["now"]) <= time.time()
    assert "simulated" not in invoke(command, "--clock", "real").stdout


@pytest.mark.parametrize("command", ["intensity", "plan"])
def test_now_sets_the_simulated_clocks_time(simulated_project, command):
    shown = json.loads(invoke(command, "--json", "--now", "2025-06-01T12:00:00Z").stdout)
    assert (shown["clock"], shown["now"]) == ("simulated", "2025-06-01T12:00:00.000000Z")


def test_intensity_at_a_given_now_prints_that_times_value_and_clock(simulated_project):
    assert invoke("intensity", "--now", "2025-06-01T12:00:00Z").stdout.startswith(
        "mock GB: 393 gCO2/kWh now (2025-06-01T12:00:00.000000Z, simulated clock)"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (["--clock", "wall"], "--clock: Input should be 'simulated' or 'real', got 'wall'"),
        (["--now", "tomorrow"], "--now: invalid time 'tomorrow'"),
        (["--now", "2025-06-01T12:00:00"], "--now: time 2025-06-01T12:00:00 has no time zone"),
        (["--clock", "real", "--now", "2025-06-01T12:00:00Z"], "--now: a time to look from is for the simulated"),
    ],
    ids=["unknown-clock", "not-a-time", "no-time-zone", "now-on-the-real-clock"],
)
def test_a_bad_clock_or_now_is_one_line_and_exit_2(simulated_project, options, message):
    result = invoke("plan", *options)
    [line] = result.stderr.splitlines()
    assert result.exit_code == 2 and line.startswith(f"carbon-pipe: error: {message}"), line
