"""Do the profile's verdicts and the energy charged to a run survive a rerun? The figures of docs/measurement.md.

    python benchmarks/verdict_checks.py [--runs 20] [--stability 5] [--attribution 2] [--seeds 1000]
                                        [--train-samples N] [--epochs E] [--only coverage,aa,...]
                                        [--save FILE.jsonl] [--from-saved KIND=FILE.jsonl ...]

Sections (--only picks some; all by default):
- coverage: the sequential stop on synthetic data (pure numpy, a few minutes): over --seeds experiments per scenario,
  how often the interval where the profile stopped holds the true ratio: the reported (stage-wise) one, the repeated
  confidence interval reported before, and naive peeking at an uncorrected 95 %.
- aa: --runs `carbon-pipe profile --check aa` processes (the baseline against itself), on the machine as it is and
  again beside a core kept busy by a spinning process: how many say no measurable difference.
- sensitivity: --runs `carbon-pipe profile --check sensitivity` beside a busy core: how many say more, the median
  ratio against the twin's work ratio.
- stability: --stability `carbon-pipe profile` processes of the default pair beside a busy core: one verdict, and
  whether every interval holds the median ratio.
- attribution: `carbon-pipe train --run baseline` --attribution times as it is and beside a busy core: the energy
  charged (process tree) and CodeCarbon's own figure, each busy/quiet ratio against the wall-time ratio.
- budget: what every profile above spent, as a share of the baseline's expected training energy.
Every figure comes with its spread (median, min-max, or a binomial standard error). In a scratch project on the
default params (full MNIST unless --train-samples). A profile takes one to three minutes on full MNIST.

--save FILE.jsonl appends every profile's `--json` output (bursts included) as one line, with its section and where
it ran (quiet or busy). --from-saved KIND=FILE.jsonl (aa, sensitivity or stability; repeatable) profiles nothing: it
re-analyses the saved profiles of that kind with this checkout's code (`summarize` on their bursts) and
prints the same lines, then the budget figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, project_params, scratch_project  # noqa: E402

SECTIONS = ("coverage", "aa", "sensitivity", "stability", "attribution", "budget")
SAVED_KINDS = ("aa", "sensitivity", "stability")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="profile processes for each A/A and sensitivity figure")
    parser.add_argument("--stability", type=int, default=5, help="profile processes of the default pair")
    parser.add_argument("--attribution", type=int, default=2, help="baseline runs quiet and beside a busy core, each")
    parser.add_argument("--seeds", type=int, default=1000, help="synthetic experiments per coverage scenario")
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60000")
    parser.add_argument("--epochs", type=int, default=None, help="default: params.yaml's")
    parser.add_argument("--attribution-samples", type=int, default=None,
                        help="training samples of the attribution's baseline runs (default: --train-samples)")
    parser.add_argument("--attribution-epochs", type=int, default=None, help="their epochs (default: --epochs)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--aa-where", choices=("both", "quiet", "busy"), default="both",
                        help="A/A on the machine as it is, beside a busy core, or both")
    parser.add_argument("--save", type=Path, help="append every profile's --json output to this JSON-lines file")
    parser.add_argument("--from-saved", action="append", default=[], metavar="KIND=FILE.jsonl",
                        help=f"re-analyse saved profiles instead of profiling; KIND: {', '.join(SAVED_KINDS)}")
    args = parser.parse_args()
    saved = {}
    for entry in args.from_saved:
        kind, _, path = entry.partition("=")
        if kind not in SAVED_KINDS or not path:
            parser.error(f"--from-saved {entry!r}: expected KIND=FILE.jsonl, KIND one of {', '.join(SAVED_KINDS)}")
        saved[kind] = Path(path)
    args.from_saved = saved
    if saved:
        args.only = ",".join([*saved, "budget"])
    args.only = set(args.only.split(","))
    if args.only - set(SECTIONS):
        parser.error(f"--only: unknown section(s) {', '.join(sorted(args.only - set(SECTIONS)))}")
    return args


def spread(values: list[float], spec: str = ".3f") -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):{spec}} ({min(values):{spec}}-{max(values):{spec}}, n={len(values)})"


def share(count: int, total: int) -> str:
    """A count with its binomial standard error."""
    p = count / total if total else float("nan")
    return f"{count} of {total} ({100 * p:.1f} % +- {100 * np.sqrt(p * (1 - p) / max(total, 1)):.1f})"


# --- coverage of the sequential stop (synthetic) -------------------------------------------------------------------

def synthetic_processes(ratio: float, processes: int, seeds: int, between: float, within: float, rng) -> tuple:
    """Per-process mean joules per sample of a candidate and the baseline: a factor each process starts with
    (between-process variation, shared by both configurations but not exactly: each also has its own), and noise."""
    shared = np.exp(rng.normal(0, between, (seeds, processes)))
    own = np.exp(rng.normal(0, between / 2, (seeds, processes)))
    baseline = 5e-3 * shared * (1 + rng.normal(0, within, (seeds, processes)))
    candidate = ratio * 5e-3 * shared * own * np.exp(-(between / 2) ** 2 / 2) * (1 + rng.normal(0, within,
                                                                                                  (seeds, processes)))
    return candidate, baseline


def sequential_coverage(ratio: float, planned: int, budget_processes: int, seeds: int, between: float, seed: int,
                        settle_within: float = 0.05) -> dict:
    """Over `seeds` synthetic profiles stopped by the profile's own rule: how many intervals where it stopped hold the
    true ratio (the reported stage-wise one, the repeated confidence interval it replaced, naive peeking at an
    uncorrected 95 %), the processes used, and how often the stage-wise interval had to be widened to hold 1, or took
    the repeated interval's end across 1, to agree with the verdict."""
    from carbon_pipe.profiling import statistics as stats

    rng = np.random.default_rng(seed)
    planned = stats.affordable_processes(planned, 1.0, budget_processes + 0.5)  # as the profile plans; a process: 1
    candidate, baseline = synthetic_processes(ratio, planned, seeds, between, 0.03, rng)
    truth = ratio  # the candidate's mean over process factors is ratio x the baseline's (the own factor is mean 1)
    counts = {"stage-wise": 0, "repeated": 0, "naive": 0, "widened": 0, "repeated end": 0}
    used = []
    for index in range(seeds):
        for mode, level in (("repeated", stats.sequential_level(stats.FIRST_LOOK, planned)), ("naive", stats.LEVEL)):
            for processes in range(stats.FIRST_LOOK, planned + 1):
                x, y = candidate[index, :processes], baseline[index, :processes]
                _, low, high = (float(v) for v in stats.ratio_interval(x, y, level))
                reason = stats.stop_reason(processes, planned, [(low, high)], settle_within, processes, 1.0,
                                           budget_processes + 0.5)
                if reason is not None:
                    break
            counts[mode] += low <= truth <= high
            if mode == "repeated":
                used.append(processes)
                _, low, high = stats.interval_at_stop(x, y, stats.FIRST_LOOK, planned, settle_within)
                counts["stage-wise"] += low <= truth <= high
                _, raw_low, raw_high = stats.stagewise_ratio_interval(x, y, stats.FIRST_LOOK, planned, settle_within)
                counts["widened"] += (raw_low, raw_high) != (low, high) and low <= 1 <= high
                counts["repeated end"] += (raw_low, raw_high) != (low, high) and not low <= 1 <= high
    return {**counts, "used": used}


COVERAGE_SCENARIOS = (  # true ratio, between-process variation, the most processes, processes the budget allows
    (1.0, 0.05, 6, 6), (1.0, 0.15, 6, 4), (0.9, 0.05, 6, 6), (1.25, 0.10, 8, 8), (0.97, 0.03, 12, 12),
    (1.10, 0.05, 6, 6), (0.80, 0.10, 6, 6), (0.90, 0.05, 3, 3), (1.0, 0.05, 12, 12), (1.25, 0.10, 8, 4),
)


def coverage(args: argparse.Namespace) -> None:
    print(f"\n## coverage of the sequential stop: synthetic, {args.seeds} seeds per scenario (target 93-97 %)")
    print("scenario: true ratio, between-process variation, the most processes (profile.processes), processes the "
          "budget allows (the planned ones are the fewer of the two)")
    for ratio, between, planned, budget in COVERAGE_SCENARIOS:
        started = time.perf_counter()
        result = sequential_coverage(ratio, planned, budget, args.seeds, between, seed=int(ratio * 100))
        print(f"ratio {ratio}, variation {between:.0%}, at most {planned}, budget {budget}: stage-wise (reported) "
              f"{share(result['stage-wise'], args.seeds)}; repeated (before) {share(result['repeated'], args.seeds)}; "
              f"naive peeking {share(result['naive'], args.seeds)}; processes used "
              f"{spread([float(u) for u in result['used']], '.0f')}; widened to hold 1: {result['widened']}, the "
              f"repeated interval's end across 1: {result['repeated end']}; {time.perf_counter() - started:.0f} s",
              flush=True)


# --- profile processes ----------------------------------------------------------------------------------------------

def command(*args: str) -> tuple[str, float]:
    """A carbon-pipe command in its own process: (stdout, wall seconds)."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "carbon_pipe.cli", *args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": pythonpath})
    if result.returncode != 0:
        sys.exit(f"verdict_checks: carbon-pipe {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout, time.perf_counter() - started


class BusyCore:
    """A neighbour that keeps one core busy (a spinning Python loop) while it is open."""

    def __enter__(self) -> BusyCore:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def show(index: int, run: dict) -> None:
    low, high = run["ratio_ci95"]
    took = f"; {run['command_seconds']:.0f} s" if "command_seconds" in run else ""  # a bare `profile --json` line
    print(f"  {index + 1:>2}: ratio {run['ratio']:.3f} [{low}, {high}] {run['verdict']}; {run['processes']} "
          f"processes, stopped: {run['stopping']['reason']}{took}", flush=True)


def profiles(count: int, section: str, where: str, save: Path | None, *args: str) -> list[dict]:
    """`count` profiles, each in its own process (beside a busy core where `where` is busy), shown as they finish."""
    runs = []
    with BusyCore() if where == "busy" else contextlib.nullcontext():
        for index in range(count):
            output, wall = command("profile", "--json", *args)
            run = {**json.loads(output), "command_seconds": wall, "section": section, "where": where}
            runs.append(run)
            if save is not None:
                with save.open("a") as lines:
                    lines.write(json.dumps(run) + "\n")
            show(index, run)
    return runs


def reanalysed(run: dict) -> dict:
    """A saved profile's figures recomputed from its bursts by this checkout's code (its other keys kept)."""
    from carbon_pipe.profiling.record import BurstRecord
    from carbon_pipe.profiling.render import flat_summary
    from carbon_pipe.profiling.result import Stopping, summarize
    from carbon_pipe.training.run_summary import ProfileStopping

    names = [key.removesuffix("_precision") for key in run if key.endswith("_precision")]
    profile = summarize(
        [BurstRecord.model_validate(burst).burst() for burst in run["bursts"]], baseline=names[0],
        precisions={name: run[f"{name}_precision"] for name in names}, energy_method=run["energy_method"],
        stopping=Stopping(**ProfileStopping.model_validate(run["stopping"]).model_dump()),
    )
    return {**run, **flat_summary(profile, names[1])}


def saved_profiles(path: Path, section: str, where: str) -> list[dict]:
    """The profiles of one section (and where it ran) saved in `path`, re-analysed and shown; lines saved without
    a section or place count for any."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        sys.exit(f"verdict_checks: --from-saved {path}: {exc}")
    runs = [reanalysed(run) for run in lines if run.get("section", section) == section
            and run.get("where", where) == where]
    for index, run in enumerate(runs):
        show(index, run)
    return runs


def verdict_counts(runs: list[dict], expected: str) -> str:
    return (f"{share(sum(run['verdict'] == expected for run in runs), len(runs))} say {expected}; ratio "
            f"{spread([run['ratio'] for run in runs])}; processes {spread([run['processes'] for run in runs], '.0f')}")


def budget_shares(runs: list[dict]) -> list[float]:
    """Each profile's whole spend over the baseline's expected training energy (its budget / budget_pct)."""
    pct = project_params()["profile"]["budget_pct"]
    return [100 * run["stopping"]["spent_joules"] / (run["stopping"]["budget_joules"] * 100 / pct) for run in runs]


def profile_sections(args: argparse.Namespace, spent: list[dict]) -> None:
    def source(section: str, where: str, count: int, *cli: str) -> list[dict]:
        if args.from_saved:
            return saved_profiles(args.from_saved[section], section, where)
        return profiles(count, section, where, args.save, *cli)

    runs = "saved" if args.from_saved else args.runs
    if "aa" in args.only:
        print(f"\n## A/A: the baseline against itself, {runs} processes each (target >= 19 of 20)")
        if args.aa_where in ("both", "quiet"):
            quiet = source("aa", "quiet", args.runs, "--check", "aa")
            print(f"as the machine is: {verdict_counts(quiet, 'no measurable difference')}")
            spent += quiet
        if args.aa_where in ("both", "busy"):
            busy = source("aa", "busy", args.runs, "--check", "aa")
            print(f"beside a busy core: {verdict_counts(busy, 'no measurable difference')}")
            spent += busy
    if "sensitivity" in args.only:
        print(f"\n## sensitivity: the baseline against its costlier twin beside a busy core, {runs} processes")
        twin = source("sensitivity", "busy", args.runs, "--check", "sensitivity")
        if twin:
            work = twin[0]["work_ratio"]
            ratios = [run["ratio"] / work for run in twin]
            print(f"{verdict_counts(twin, 'more')}; work ratio {work:.3f}; ratio / work ratio {spread(ratios)} "
                  f"(target: median within 10 %)")
        spent += twin
    if "stability" in args.only:
        print(f"\n## stability: {'saved' if args.from_saved else args.stability} profiles of the default pair beside a "
              "busy core")
        pair = source("stability", "busy", args.stability)
        if pair:
            median = statistics.median(run["ratio"] for run in pair)
            holding = sum(run["ratio_ci95"][0] <= median <= run["ratio_ci95"][1] for run in pair
                          if None not in run["ratio_ci95"])
            print(f"verdicts {sorted({run['verdict'] for run in pair})}; median ratio {median:.3f}; intervals "
                  f"holding it {share(holding, len(pair))}")
        spent += pair


# --- attribution ----------------------------------------------------------------------------------------------------

def baseline_run() -> dict:
    from carbon_pipe.training.run_summary import read_run_summary

    command("train", "--run", "baseline")
    summary = read_run_summary("baseline")
    carbon = summary.carbon_metrics
    return {"energy_wh": 1e3 * carbon.energy_consumed_kwh, "codecarbon_wh": 1e3 * carbon.codecarbon_energy_kwh,
            "seconds": summary.training_metrics.total_time_seconds, "method": carbon.energy_method}


def attribution(args: argparse.Namespace) -> list[dict]:
    print(f"\n## attribution: the baseline run {args.attribution} time(s) as the machine is, then beside a busy core")
    quiet = [baseline_run() for _ in range(args.attribution)]
    with BusyCore():
        busy = [baseline_run() for _ in range(args.attribution)]
    for label, runs in (("as it is", quiet), ("busy core", busy)):
        for run in runs:
            print(f"  {label}: {run['energy_wh']:.4f} Wh charged, CodeCarbon's own {run['codecarbon_wh']:.4f} Wh, "
                  f"{run['seconds']:.1f} s")
    ratio = {key: [b[key] / q[key] for q in quiet for b in busy] for key in ("energy_wh", "codecarbon_wh", "seconds")}
    print(f"busy / quiet: wall time {spread(ratio['seconds'])}; energy charged {spread(ratio['energy_wh'])}; "
          f"CodeCarbon's own {spread(ratio['codecarbon_wh'])}")
    moved = [(e - 1) / (s - 1) for e, s in zip(ratio["energy_wh"], ratio["seconds"]) if s != 1]
    print(f"energy moved / wall time moved: charged {spread(moved)} (target < 0.5); CodeCarbon's own "
          f"{spread([(c - 1) / (s - 1) for c, s in zip(ratio['codecarbon_wh'], ratio['seconds']) if s != 1])}")
    print(f"method: {quiet[0]['method']}")
    return quiet + busy


def main() -> None:
    args = parse_args()
    print(f"verdict checks on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start "
          f"(a shared machine: label the figures with it)")
    if "coverage" in args.only:
        coverage(args)
    if not args.only - {"coverage"}:
        return
    sections = {"data": {"train_limit": args.train_samples}}
    if args.epochs:
        sections["train"] = {"epochs": args.epochs}
    spent: list[dict] = []
    if args.from_saved:
        profile_sections(args, spent)
    elif args.only & {"aa", "sensitivity", "stability"}:
        with scratch_project(project_params(**sections), prefix="carbon-pipe-verdict-checks-"):
            profile_sections(args, spent)
    baseline_runs = []
    if "attribution" in args.only:
        sections = {"data": {"train_limit": args.attribution_samples or args.train_samples},
                    "train": {"epochs": args.attribution_epochs or args.epochs or project_params()["train"]["epochs"]}}
        with scratch_project(project_params(**sections), prefix="carbon-pipe-attribution-"):
            baseline_runs = attribution(args)
    if "budget" in args.only and spent:
        shares = budget_shares(spent)
        print(f"\n## budget: profiling's whole spend / the baseline's expected training energy, {len(spent)} profiles")
        print(f"{spread(shares, '.1f')} % (budget {project_params()['profile']['budget_pct']} %: "
              f"{sum(s <= project_params()['profile']['budget_pct'] for s in shares)} within)")
        if baseline_runs:
            measured = statistics.median(run["energy_wh"] for run in baseline_runs) * 3600
            print(f"against the measured baseline runs (median {measured:.0f} J a run): "
                  f"{spread([100 * run['stopping']['spent_joules'] / measured for run in spent], '.1f')} %")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
