import subprocess
import sys


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


def test_intensity_and_plan_say_when_now_is_the_simulated_clocks_and_take_now_and_clock(workspace):
    """On the default params both showed January 2025 to someone asking about now."""
    import json
    import time

    from typer.testing import CliRunner

    from carbon_pipe.cli import app
    from carbon_pipe.timeutil import parse_instant

    from ..conftest import default_params, write_params

    write_params(workspace, default_params())  # scheduler.clock simulated, now 2025-01-15T18:00:00+00:00
    runner = CliRunner()
    hint = (
        "simulated clock: now is 2025-01-15T18:00:00.000000Z (scheduler.now, or --now), not the wall clock's time; "
        "--clock real looks from the wall clock"
    )
    for command in ("intensity", "plan"):
        text = runner.invoke(app, [command]).stdout.strip().splitlines()
        assert text[-1] == hint
        shown = json.loads(runner.invoke(app, [command, "--json"]).stdout)
        assert (shown["clock"], shown["now"]) == ("simulated", "2025-01-15T18:00:00.000000Z")

        before = time.time()
        shown = json.loads(runner.invoke(app, [command, "--json", "--clock", "real"]).stdout)
        assert shown["clock"] == "real" and before <= parse_instant(shown["now"]) <= time.time()
        assert "simulated" not in runner.invoke(app, [command, "--clock", "real"]).stdout

        shown = json.loads(runner.invoke(app, [command, "--json", "--now", "2025-06-01T12:00:00Z"]).stdout)
        assert (shown["clock"], shown["now"]) == ("simulated", "2025-06-01T12:00:00.000000Z")
    assert runner.invoke(app, ["intensity", "--now", "2025-06-01T12:00:00Z"]).stdout.startswith(
        "mock GB: 393 gCO2/kWh now (2025-06-01T12:00:00.000000Z, simulated clock)"
    )
    for options, message in [
        (["--clock", "wall"], "--clock: Input should be 'simulated' or 'real', got 'wall'"),
        (["--now", "tomorrow"], "--now: invalid time 'tomorrow'"),
        (["--now", "2025-06-01T12:00:00"], "--now: time 2025-06-01T12:00:00 has no time zone"),
        (["--clock", "real", "--now", "2025-06-01T12:00:00Z"], "--now: a time to look from is for the simulated"),
    ]:
        result = runner.invoke(app, ["plan", *options])
        [line] = result.stderr.splitlines()
        assert result.exit_code == 2 and line.startswith(f"carbon-pipe: error: {message}"), line
