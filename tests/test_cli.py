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
    from .conftest import default_params, write_params

    write_params(tmp_path, default_params())
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "fastest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--run: expected baseline or optimized, got 'fastest'" in result.stderr
