"""Many experiments, few workers: what the joint plan saves against first-come and the stampede, and what it costs.

    python benchmarks/joint_queue.py [--parts savings,vintages,scale] [--seeds 3] [--repeats 3] [--days 14]
                                     [--entries 1000,100]

- savings: sweep workloads on the DE, GB and FR 2020 traces (Let's Wait Awhile), synthetic forecasts with 10 %
  error (--seeds draws): `sweep-evening` is 12 experiments of 1-4 h submitted at 17:00 UTC every day, due 48 h
  later, 2 workers; `sweep-morning` is 24 experiments of 30 min-2 h submitted at 09:00 UTC on workdays, due 24 h
  later, 4 workers. Per trace: saving vs fcfs of greedy, joint and oracle-capacity (mean +- sd over the draws),
  their deadline misses, joint's share of the oracle's saving and the days joint emitted no more than fcfs.
- vintages: the evening sweep on the GB actuals with the GB forecasts as they were issued (2023-03-14 to -18).
- scale: the joint plan of 1,000 entries arriving over a week (30-min steps, 30 min-1.5 h each, due 24 h after
  arrival, 8 workers), and of 100, each planned in a fresh process (--repeats): time, peak memory, gap to the bound.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(REPO))
CARBON = REPO.parent / "shared/data/carbon"
TRACES = {"DE": "lets-wait-awhile/ger_ci.csv", "GB": "lets-wait-awhile/gb_ci.csv", "FR": "lets-wait-awhile/fr_ci.csv"}
GB_ACTUALS = "uk-carbon-intensity-forecasts/gb_national_actuals_2023-03-14_2023-03-19.csv"
GB_VINTAGES = "uk-carbon-intensity-forecasts/gb_national_forecast_vintages_2023-03-14_2023-03-18.csv"
DAY = 86400.0
WORKLOADS = {  # name: (count, submitted at, shortest, longest, due after, workers, weekdays)
    "sweep-evening": (12, "17:00", 3600.0, 4 * 3600.0, 48 * 3600.0, 2, "all"),
    "sweep-morning": (24, "09:00", 1800.0, 2 * 3600.0, 24 * 3600.0, 4, "Mon-Fri"),
}


def sweep_table(name: str, since: float, days: int, seed: int):
    from carbon_pipe.backtest.workload import Sweep, sweep

    count, at, shortest, longest, due, _, weekdays = WORKLOADS[name]
    return sweep(Sweep(since, since + days * DAY, count, at, (shortest, longest), due, weekdays, seed=seed), name)


def backtest(trace: Path, table, workers: int, seeds: int, vintages=None, until: float | None = None):
    from carbon_pipe.backtest.capacity_report import run_capacity
    from carbon_pipe.backtest.runner import Setup
    from carbon_pipe.intensity.traces import load_trace

    series = load_trace(trace, "auto", max_gap=float("inf"))
    setup = Setup(forecast_error=None if vintages is not None else 0.1, seeds=1 if vintages is not None else seeds)
    return run_capacity(series, setup, workers, vintages, table)


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.2f} +- {sd:4.2f}"


def summary(report) -> dict[str, dict]:
    """Per policy: savings over the draws, misses, share of the oracle, days not worse than fcfs."""
    rows: dict[str, dict] = {}
    for score in report.scores:
        row = rows.setdefault(score.policy, {"saving": [], "late": [], "share": [], "ok": [], "days": score.days})
        row["saving"].append(score.saving_vs_fcfs_pct)
        row["late"].append(score.deadline_misses)
        row["share"].append(score.fraction_of_oracle if score.fraction_of_oracle is not None else float("nan"))
        row["ok"].append(score.days_not_worse)
    return rows


def savings(seeds: int, days: int) -> None:
    draws = f"{seeds} draws (mean +- sd)"
    print(f"== savings vs fcfs (%), synthetic forecast error 10 %, {draws}, {days} days from 2020-03-02")
    since = 1583107200.0  # 2020-03-02T00:00Z
    for name, (count, at, shortest, longest, due, workers, weekdays) in WORKLOADS.items():
        print(f"\n{name}: {count} experiments of {shortest / 3600:g}-{longest / 3600:g} h at {at} UTC ({weekdays}), "
              f"due {due / 3600:g} h later, {workers} workers")  # fmt: skip
        print(f"{'trace':<6}{'greedy':>16}{'late':>6}{'joint':>16}{'late':>6}{'oracle':>10}{'late':>6}"
              f"{'joint/oracle':>14}{'days ok':>10}{'seconds':>9}")  # fmt: skip
        for trace, path in TRACES.items():
            started = time.perf_counter()
            rows = summary(backtest(CARBON / path, sweep_table(name, since, days, 0), workers, seeds))
            g, j, o = rows["greedy"], rows["joint"], rows["oracle-capacity"]
            print(
                f"{trace:<6}{spread(g['saving']):>16}{max(g['late']):>6}{spread(j['saving']):>16}{max(j['late']):>6}"
                f"{o['saving'][0]:>10.2f}{o['late'][0]:>6}{spread(j['share']):>14}"
                f"{min(j['ok']):>5}/{j['days']:<4}{time.perf_counter() - started:>9.0f}"
            )


def vintages() -> None:
    from carbon_pipe.intensity.traces import load_forecasts

    print("\n== GB forecasts as issued (2023-03-14 to -18), the evening sweep, 2 workers")
    issued = load_forecasts(CARBON / GB_VINTAGES, "auto")
    first = float(np.floor(issued.issued.min() / DAY) * DAY)
    table = sweep_table("sweep-evening", first, 3, 0)
    rows = summary(backtest(CARBON / GB_ACTUALS, table, 2, 1, vintages=issued))
    for policy, row in rows.items():
        share = "-" if np.isnan(row["share"][0]) else f"{row['share'][0]:.3f}"
        print(f"{policy:<17} saving {row['saving'][0]:6.2f} %  late {row['late'][0]:3d}  of oracle {share:>6}  "
              f"days not worse {row['ok'][0]}/{row['days']}")  # fmt: skip


def scale_once(entries: int) -> dict:
    """One plan in this process: the figures as JSON (the parent runs each in a fresh process)."""
    from carbon_pipe.intensity.traces import load_trace
    from carbon_pipe.scheduling.joint import QueuedJob, plan_jobs

    series = load_trace(CARBON / TRACES["GB"], "auto", max_gap=float("inf"))
    rng = np.random.default_rng(entries)
    start = 1583107200.0
    arrival = start + 1800.0 * rng.integers(0, 6 * 48, entries)
    duration = 1800.0 * rng.integers(1, 4, entries)
    jobs = [QueuedJob(f"e{k}", a, a + d + DAY, d, 0.3) for k, (a, d) in enumerate(zip(arrival, duration))]
    began = time.perf_counter()
    plan = plan_jobs(jobs, series, 8, start, step=1800.0)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak, "gap": plan.gap, "method": plan.method}


def scale(repeats: int, sizes: list[int]) -> None:
    print(f"\n== scale: entries over a week, 30-min steps, 8 workers, each plan in a fresh process x {repeats}")
    for entries in sizes:
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--scale-once", str(entries)], capture_output=True, text=True
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        seconds = [r["seconds"] for r in runs]
        middle, low, high = statistics.median(seconds), min(seconds), max(seconds)
        print(f"{entries:>5} entries: {middle:.1f} s (range {low:.1f}-{high:.1f}), "
              f"peak {max(r['peak_mb'] for r in runs):.0f} MB (whole process), {runs[0]['method']}, "
              f"gap to the LP bound {100 * max(r['gap'] for r in runs):.2f} % at most")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="savings,vintages,scale")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--entries", default="1000,100", help="Plan sizes for the scale part, comma-separated.")
    parser.add_argument("--scale-once", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_once:
        print(json.dumps(scale_once(args.scale_once)))
        return
    parts = args.parts.split(",")
    if "savings" in parts:
        savings(args.seeds, args.days)
    if "vintages" in parts:
        vintages()
    if "scale" in parts:
        scale(args.repeats, [int(size) for size in args.entries.split(",")])


if __name__ == "__main__":
    main()
