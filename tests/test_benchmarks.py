"""The benchmark scripts run and print their figures (tiny sizes: this checks the scripts, not the speed)."""

import os
import subprocess
import sys

import pytest

from .conftest import MNIST_RAW, REPO

pytestmark = pytest.mark.slow


def bench(script: str, *args: str) -> str:
    # The tests' mirror (which honours CARBON_PIPE_SHARED), so a benchmark never falls back to a download.
    env = {**os.environ, "CARBON_PIPE_MNIST_MIRROR": str(MNIST_RAW)} if MNIST_RAW.is_dir() else None
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True, timeout=900, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_memory_benchmark_shows_accumulation_lowering_peak_memory():
    output = bench("memory.py", "--steps", "1", "--device", "cpu")
    rows = {
        int(line.split()[0]): float(line.split()[3])
        for line in output.splitlines()
        if line.split()[:1] in (["1"], ["8"])
    }
    assert rows[8] < rows[1] / 2  # 32-sample micro-batches hold a fraction of the activations of 256-sample ones


def test_throughput_benchmark_reports_both_ratios(mnist_mirror):
    output = bench("throughput.py", "--train-samples", "512", "--epochs", "2", "--rounds", "1")
    assert "pipeline / bare, each run against the bare runs beside it:" in output
    assert "pipeline / per-sample transforms:" in output


def test_gpu_check_refuses_without_cuda_and_runs_its_cpu_path(mnist_mirror):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run benchmarks/gpu_check.py itself")
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py")], capture_output=True, text=True)
    assert refused.returncode == 1 and "no CUDA device: nothing measured" in refused.stderr
    output = bench("gpu_check.py", "--allow-cpu", "--train-samples", "256", "--test-samples", "128", "--epochs", "1")
    assert "nothing here is a GPU figure" in output
    for label in ("precision", "peak memory (MB", "samples/s", "test accuracy (%)", "GPU energy, NVML counter"):
        assert label in output
    assert "fp32" in output.splitlines()[2]  # the baseline's precision, as the run reported it


def test_lets_wait_awhile_benchmark_reproduces_the_published_de_cells():
    from .conftest import CARBON_DATA

    if not (CARBON_DATA / "lets-wait-awhile").is_dir():
        pytest.skip("Let's Wait Awhile traces not found")
    output = bench("lets_wait_awhile.py", "--shared", str(CARBON_DATA.parents[1]), "--regions", "DE")
    assert "16 published cells compared" in output and "(all within 0.15 pp)" in output
    assert "| DE | ML next-workday | 5% | interr. | 7.92 | 7.93 | +0.01 |" in output


def test_backtest_scale_benchmark_reports_every_policy():
    output = bench("backtest_scale.py", "--repeats", "1", "--cases", "hourly-10k-jobs")
    rows = [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| policy")]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "now",
        "threshold",
        "forecast-window",
        "rolling",
        "forecast-chunks",
        "interruptible",
        "oracle",
        "oracle-interruptible",
    ]


def test_api_import_benchmark_prints_both_figures():
    output = bench("api_import.py", "--runs", "2")
    assert "from carbon_pipe import track, plan, wait_for_window'" in output and "carbon-pipe --help:" in output


def test_joint_queue_benchmark_prints_savings_and_plan_sizes():
    output = bench(
        "joint_queue.py", "--parts", "savings,scale", "--days", "2", "--seeds", "1", "--entries", "40", "--repeats", "1"
    )
    sweeps = [line.split(":")[0] for line in output.splitlines() if line.startswith("sweep-")]
    assert sweeps == ["sweep-evening", "sweep-morning", "sweep-evening-24h"]
    rows = [line.split()[0] for line in output.splitlines() if line[:2] in ("DE", "GB", "FR")]
    assert rows == ["DE", "GB", "FR"] * len(sweeps)
    assert "40 entries:" in output and "gap to the LP bound" in output
