"""GPU check: train baseline and optimized on MNIST on a CUDA device and print one table.

    python benchmarks/gpu_check.py [--epochs 3] [--train-samples N] [--compile] [--channels-last]
    python benchmarks/gpu_check.py --allow-cpu --train-samples 512 --epochs 1   # the same plumbing on a CPU

Runs `carbon-pipe train --run baseline` and `--run optimized` (params.yaml's configurations, on the device) in a
scratch project, each in its own process as `dvc repro` would, and reports for both: the precision that really
ran, peak GPU memory (max_memory_allocated / max_memory_reserved after a reset at run start) and its reduction,
samples/s, test accuracy, and energy measured by NVML two ways: the GPU's total-energy counter read around the
whole train command (startup and data loading included), and CodeCarbon's NVML-based GPU energy over training.
MNIST comes from $CARBON_PIPE_MNIST_MIRROR / $CARBON_PIPE_DATA_MIRROR or a shared/ folder beside or in the
checkout; without one it needs internet access. A few minutes on one GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from common import REPO, mnist_mirror, project_params, scratch_project  # noqa: E402

from carbon_pipe.training.run_summary import RunSummary, read_run_summary  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--test-samples", type=int, default=None, help="default: all 10000")
    parser.add_argument("--compile", action="store_true", help="torch.compile the optimized run")
    parser.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format for the optimized run"
    )
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run on the CPU (to test this script)")
    return parser.parse_args()


def cuda_description() -> str | None:
    """The GPU's name and the CUDA/torch versions, or None without a usable CUDA device."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    except Exception as exc:  # a broken driver install must not hide behind a traceback
        print(f"gpu_check: CUDA is not usable: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return None


class NvmlEnergy:
    """GPU 0's total-energy counter (millijoules since the driver loaded; Volta or newer), read through NVML."""

    def __init__(self) -> None:
        from carbon_pipe.profiling.counters import CounterUnavailable, nvml_energy_reader

        self.read, self.error = None, None
        try:
            self.read = nvml_energy_reader(0)
        except CounterUnavailable as exc:
            self.error = str(exc)

    def read_wh(self) -> float | None:
        if self.read is None:
            return None
        try:
            return self.read() / 3.6e6  # mJ -> Wh
        except Exception as exc:
            self.error = f"{exc.__class__.__name__}: {exc}"
            return None


@dataclass(frozen=True)
class Measured:
    """One run's summary (its model) and what this script measured around it."""

    summary: RunSummary
    nvml_command_wh: float | None  # the NVML counter over the whole command
    command_seconds: float
    codecarbon_gpu_wh: float | None  # CodeCarbon's NVML figure over the run's intervals


def train(run: str, nvml: NvmlEnergy) -> Measured:
    """One `carbon-pipe train` in its own process, with the NVML counter read around it."""
    before = nvml.read_wh()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", run], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    wall = time.perf_counter() - started
    after = nvml.read_wh()
    if result.returncode != 0:
        sys.exit(f"gpu_check: train --run {run} failed:\n{result.stderr[-4000:]}")
    intervals = pd.read_csv(f"stages/train-{run}/energy_intervals.csv")
    return Measured(
        read_run_summary(run),
        after - before if before is not None and after is not None else None,
        wall,
        float(intervals["gpu_energy_kwh"].sum()) * 1000 if len(intervals) else None,
    )


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def change(base, new, relative: bool = True) -> str:
    if base is None or new is None:
        return ""
    if relative:
        return f"{100 * (new - base) / base:+.1f} %" if base else ""
    return f"{new - base:+.2f}"


def table(device: str, args, base: Measured, opt: Measured, nvml: NvmlEnergy) -> str:
    def row(label, key, spec=".1f", relative=True):
        b, o = key(base), key(opt)
        return f"{label:<40}{fmt(b, spec):>26}{fmt(o, spec):>26}  {change(b, o, relative)}"

    def energy_wh(run: Measured) -> float | None:
        kwh = run.summary.carbon_metrics.energy_consumed_kwh
        return None if kwh is None else 1000 * kwh

    b, o = base.summary, opt.summary
    lines = [
        f"GPU check on {device}: MNIST {b.training_metrics.epochs} epochs, "
        f"{args.train_samples or 'all'} training samples",
        f"{'':<40}{'baseline':>26}{'optimized':>26}  change",
        f"{'precision':<40}{b.precision:>26}{o.precision:>26}",
        f"{'batch x accumulation':<40}{f'{b.batch_size} x {b.gradient_accumulation_steps}':>26}"
        f"{f'{o.batch_size} x {o.gradient_accumulation_steps}':>26}",
        f"{'compile / channels-last':<40}{f'{b.compile} / {b.channels_last}':>26}"
        f"{f'{o.compile} / {o.channels_last}':>26}",
        row("peak memory (MB, see method below)", lambda run: run.summary.memory_metrics.peak_memory_mb),
        row("peak memory reserved (MB, CUDA only)", lambda run: run.summary.memory_metrics.peak_reserved_mb),
        row("samples/s (mean over epochs)", lambda run: run.summary.training_metrics.samples_per_second, ".0f"),
        row("test accuracy (%)", lambda run: run.summary.training_metrics.final_accuracy, ".2f", relative=False),
        row("training time (s)", lambda run: run.summary.training_metrics.total_time_seconds),
        row("GPU energy, NVML counter, command (Wh)", lambda run: run.nvml_command_wh, ".3f"),
        row("GPU energy, CodeCarbon NVML, train (Wh)", lambda run: run.codecarbon_gpu_wh, ".3f"),
        row("energy, all components, CodeCarbon (Wh)", energy_wh, ".3f"),
        f"memory: {b.memory_metrics.method}",
        f"energy method (CodeCarbon): {o.carbon_metrics.energy_method}",
    ]
    if nvml.error:
        lines.append(f"NVML counter unavailable: {nvml.error}")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    device = cuda_description()
    if device is None and not args.allow_cpu:
        sys.exit("gpu_check: no CUDA device: nothing measured (--allow-cpu runs the same steps on the CPU)")
    if mnist_mirror() is None:
        print("gpu_check: no MNIST mirror found; fetch-data will try to download MNIST", file=sys.stderr)
    nvml = NvmlEnergy()
    optimized = {"compile": args.compile, "channels_last": args.channels_last}
    params = project_params(
        data={"train_limit": args.train_samples, "test_limit": args.test_samples},
        train={"epochs": args.epochs, "device": "cuda" if device else "cpu"},
        energy={"measure_power_secs": 2},
        optimized=optimized,
    )
    with scratch_project(params, prefix="carbon-pipe-gpu-check-"):
        base, opt = train("baseline", nvml), train("optimized", nvml)
    print(table(device or "CPU (--allow-cpu: no GPU, nothing here is a GPU figure)", args, base, opt, nvml))


if __name__ == "__main__":
    main()
