"""Does `carbon-pipe profile` give the same answer three times in a row under load, and what does profiling cost?

    python benchmarks/profile_stability.py [--runs 3] [--repeats 1] [--train-samples N] [--epochs 3] [--no-load]

In a scratch project on the default params (full MNIST unless --train-samples), with a background process keeping
one CPU core busy (started and stopped here): `carbon-pipe profile --json` --runs times in a row, each in its own
process as a user runs it (--repeats such sets), then `carbon-pipe train --run baseline` once. Prints each run's
ratio (optimized / baseline energy per sample), its 95 % interval and verdict; for each set, whether the verdicts
agree and every interval contains the median of its ratios, and how many sets held both; and the profile's energy
and time against the baseline run's (the budget: 10 %). Torch runs with OMP_NUM_THREADS=1 unless it is set. Three
to four minutes per set on full MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, project_params, scratch_project  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="profile runs in a row")
    parser.add_argument("--repeats", type=int, default=1, help="sets of --runs profile runs")
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--epochs", type=int, default=None, help="of the baseline run (default: params.yaml's)")
    parser.add_argument("--no-load", action="store_true", help="no background process")
    return parser.parse_args()


def command(*args: str) -> tuple[str, float]:
    """A carbon-pipe command in its own process: (stdout, wall seconds)."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "carbon_pipe.cli", *args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": pythonpath})
    if result.returncode != 0:
        sys.exit(f"profile_stability: carbon-pipe {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout, time.perf_counter() - started


def busy_core() -> subprocess.Popen:
    """A neighbour that keeps one core busy (a spinning Python loop)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def spread(values: list[float], unit: str = "", scale: float = 1.0) -> str:
    return f"{scale * statistics.median(values):.4g}{unit} ({scale * min(values):.4g}-{scale * max(values):.4g})"


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sections = {"data": {"train_limit": args.train_samples}}
    if args.epochs:
        sections["train"] = {"epochs": args.epochs}
    print(f"profile stability: {args.runs} runs of `carbon-pipe profile` in a row, MNIST "
          f"{args.train_samples or 'all'} training samples, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"{'no background load' if args.no_load else 'one core kept busy by a background process'}")
    print(f"{'run':>3}  {'ratio':>6}  {'95 % interval':<17}  {'verdict':<25}{'baseline mJ/sample':>19}"
          f"{'optimized mJ/sample':>20}{'profile mWh':>12}{'bursts s':>9}{'command s':>10}", flush=True)
    neighbour = None if args.no_load else busy_core()
    try:
        with scratch_project(project_params(**sections), prefix="carbon-pipe-profile-stability-"):
            sets = []
            for repeat in range(args.repeats):
                sets.append([])
                for index in range(1, args.runs + 1):
                    output, wall = command("profile", "--json")
                    sets[-1].append({**json.loads(output), "command_seconds": wall})
                    print_run(index, sets[-1][-1])
                print(f"set {repeat + 1}: {agreement(sets[-1])}", flush=True)
            _, baseline_wall = command("train", "--run", "baseline")
            baseline = json.loads(Path("metrics/baseline.json").read_text())
    finally:
        if neighbour is not None:
            neighbour.terminate()
            neighbour.wait()
    held = sum(agreement(runs).endswith("both held") for runs in sets)
    print(f"{held} of {len(sets)} set(s) of {args.runs} runs: same verdict and every interval contains the median")
    report([run for runs in sets for run in runs], baseline, baseline_wall)


def print_run(index: int, run: dict) -> None:
    low, high = run["ratio_ci95"]
    print(f"{index:>3}  {run['ratio']:>6.3f}  [{low:.3f}, {high:.3f}]   {run['verdict']:<25}"
          f"{1e3 * run['baseline_j_per_sample']:>19.4f}{1e3 * run['optimized_j_per_sample']:>20.4f}"
          f"{1e6 * run['profiling_energy_kwh']:>12.3f}{run['profiling_seconds']:>9.1f}{run['command_seconds']:>10.1f}",
          flush=True)


def agreement(runs: list[dict]) -> str:
    """Whether one set of runs gave the same verdict, each interval holding the median of their ratios."""
    median = statistics.median(run["ratio"] for run in runs)
    agree = len({run["verdict"] for run in runs}) == 1
    contain = all(run["ratio_ci95"][0] <= median <= run["ratio_ci95"][1] for run in runs)
    return (f"median ratio {median:.3f}; verdicts agree: {'yes' if agree else 'NO'}; every interval contains the "
            f"median: {'yes' if contain else 'NO'}" + ("; both held" if agree and contain else ""))


def report(runs: list[dict], baseline: dict, baseline_wall: float) -> None:
    print(f"{runs[0]['rounds']} rounds, {runs[0]['warmup_rounds']} warm-up round(s) per profile")
    energy_kwh = baseline["carbon_metrics"]["energy_consumed_kwh"]
    seconds = baseline["training_metrics"]["total_time_seconds"]
    print(f"baseline run (train --run baseline, {baseline['training_metrics']['epochs']} epochs): "
          f"{1e3 * energy_kwh:.4f} Wh, {seconds:.1f} s training, {baseline_wall:.1f} s command")
    energy_share = [run["profiling_energy_kwh"] / energy_kwh for run in runs]
    print(f"profiling / baseline run: energy {spread(energy_share, ' %', 100)} (budget 10 %: "
          f"{'met' if max(energy_share) <= 0.10 else 'NOT met'}); burst time "
          f"{spread([run['profiling_seconds'] / seconds for run in runs], ' %', 100)}; whole command "
          f"{spread([run['command_seconds'] / baseline_wall for run in runs], ' %', 100)} of the train command")
    # The same budget under the same load: the run's samples at the baseline's energy per sample in each profile
    run_samples = baseline["training_metrics"]["train_samples"] * baseline["training_metrics"]["epochs"]
    paired_share = [run["profiling_energy_kwh"] * 3.6e6 / (run["baseline_j_per_sample"] * run_samples) for run in runs]
    print(f"profiling / the baseline run's {run_samples} samples at the profile's own baseline J/sample (same load): "
          f"{spread(paired_share, ' %', 100)}")
    print(f"energy method: {runs[0]['energy_method']}")


if __name__ == "__main__":
    main()
