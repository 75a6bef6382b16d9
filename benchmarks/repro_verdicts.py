"""Does the configuration effect keep its verdict from one `dvc repro --force` to the next, while the naive one flips?

    python benchmarks/repro_verdicts.py [--runs 3] [--train-samples N] [--epochs E] [--busy-core]

In a scratch copy of this working tree (a fresh git repo; the checkout's params.yaml, dvc.lock and metrics are never
touched), on the default params (or a subset: --train-samples, --epochs): `dvc repro --force` --runs times. After
each run it prints the paired configuration verdict and ratio with its interval, the configuration effect (paired
estimate, its interval) beside the naive two-run difference, the schedule effect with its interval, the remainder
(run-to-run noise), the profiling overhead and its energy against the baseline run's (the budget: 10 %), and both
runs' SCI. Then whether the verdicts agree, how many intervals hold the runs' median ratio (a rerun's verdict and
interval should), and whether the naive difference changed sign. MNIST from
$CARBON_PIPE_DATA_MIRROR, else ../shared's copy. OMP_NUM_THREADS=1 unless set. About 6.5 minutes a run on full
MNIST (six epochs) on a 2-CPU machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, mnist_mirror, project_params  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="dvc repro --force runs")
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--epochs", type=int, default=None, help="default: params.yaml's")
    parser.add_argument("--busy-core", action="store_true", help="a background process keeps one core busy")
    return parser.parse_args()


def scratch_copy(folder: Path, params: dict) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored), its own git repo, these params."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() and not name.startswith(("metrics/", "dvc.lock")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit = ["-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "the working tree"]
    for args in (["init", "-q"], ["add", "-A"], commit):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def repro(folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(folder)}  # the copy's code runs the stages
    result = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force"], cwd=folder, capture_output=True,
                            text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"repro_verdicts: dvc repro failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return read_run(folder)


def read_run(folder: Path) -> dict:
    """The run's key metrics and comparison, through their models (one line if compare did not write them)."""
    from carbon_pipe.artifacts import read_model
    from carbon_pipe.report.summaries import Comparison, KeyMetrics

    again = "run dvc repro again"
    return {"summary": read_model(folder / "metrics/summary.json", KeyMetrics, "compare's key metrics", again),
            "comparison": read_model(folder / "metrics/comparison.json", Comparison, "compare's comparison", again)}


def grams(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:+.4g}" + ("" if low is None else f" [{low * 1000:+.4g}, {high * 1000:+.4g}]")


def print_run(index: int, run: dict) -> None:
    metrics, split = run["summary"], run["comparison"].decomposition
    ratio, (low, high) = split.configuration_ratio, split.configuration_ratio_ci95
    print(f"{index:>3}  {split.verdict:<25}{ratio:>6.3f} [{low:.3f}, {high:.3f}]"
          f"  {grams(split.configuration_effect_kg, *split.configuration_effect_kg_ci95):<28}"
          f"{grams(split.configuration_effect_naive_kg):>10}"
          f"  {grams(split.schedule_effect_kg, *split.schedule_effect_kg_ci95):<28}"
          f"{grams(split.remainder_kg):>10}{grams(split.profiling_overhead_kg):>10}"
          f"{metrics.profiling_energy_pct_of_baseline:>8.1f}"
          f"{metrics.baseline_sci_g_per_1000_samples:>10.4f}{metrics.optimized_sci_g_per_1000_samples:>10.4f}",
          flush=True)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mirror = mnist_mirror()
    if mirror:
        os.environ.setdefault("CARBON_PIPE_DATA_MIRROR", mirror)
    sections: dict = {"data": {"train_limit": args.train_samples}}
    if args.epochs:
        sections["train"] = {"epochs": args.epochs}
    load = "one core kept busy" if args.busy_core else "no added load"
    print(f"repro verdicts: {args.runs} x `dvc repro --force`, MNIST {args.train_samples or 'all'} training samples, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {load}")
    print(f"{'run':>3}  {'verdict (paired profile)':<25}{'ratio [95 %]':<22}{'configuration g [95 %]':<28}"
          f"{'naive g':>10}  {'schedule g [95 %]':<28}{'noise g':>10}{'prof. g':>10}{'prof. %':>8}"
          f"{'SCI base':>10}{'SCI opt':>10}   (SCI: g per 1,000 samples; prof. %: of the baseline run's energy)")
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy_core else None
    folder = Path(tempfile.mkdtemp(prefix="carbon-pipe-repro-verdicts-"))
    try:
        scratch_copy(folder, project_params(**sections))
        runs = []
        for index in range(1, args.runs + 1):
            runs.append(repro(folder))
            print_run(index, runs[-1])
    finally:
        if neighbour is not None:
            neighbour.terminate()
            neighbour.wait()
        shutil.rmtree(folder, ignore_errors=True)
    splits = [run["comparison"].decomposition for run in runs]
    verdicts = {split.verdict for split in splits}
    naive_signs = {split.configuration_effect_naive_kg > 0 for split in splits}
    print(f"paired verdicts agree: {'yes' if len(verdicts) == 1 else 'NO'} ({', '.join(sorted(verdicts))}); "
          f"naive two-run difference changed sign: {'yes' if len(naive_signs) > 1 else 'no'}")
    median = statistics.median(split.configuration_ratio for split in splits)
    held = sum(low <= median <= high for low, high in (split.configuration_ratio_ci95 for split in splits))
    ratios = [split.configuration_ratio for split in splits]
    spread = f", sd {statistics.stdev(ratios):.3f}" if len(ratios) > 1 else ""
    print(f"intervals holding the runs' median ratio {median:.4f}: {held} of {len(splits)} "
          f"(ratios {min(ratios):.3f}-{max(ratios):.3f}{spread})")
    shares = [run["summary"].profiling_energy_pct_of_baseline for run in runs]
    print(f"profiling energy / baseline run's: {min(shares):.1f}-{max(shares):.1f} % (budget 10 %: "
          f"{'met' if max(shares) <= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
