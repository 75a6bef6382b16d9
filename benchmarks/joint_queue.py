"""Many experiments, few workers: what the joint plan saves against first-come and the stampede, and what it costs.

    python benchmarks/joint_queue.py [--parts savings,vintages,days,scale] [--seeds 3] [--repeats 3] [--days 14]
                                     [--weeks 8] [--traces DE,GB,FR,EM-DE,...] [--entries 1000,100]

- savings: sweep workloads on the DE, GB and FR 2020 traces (Let's Wait Awhile), synthetic forecasts with 10 %
  error (--seeds draws): `sweep-evening` is 12 experiments of 1-4 h submitted at 17:00 UTC every day, due 48 h
  later, 2 workers; `sweep-morning` is 24 experiments of 30 min-2 h submitted at 09:00 UTC on workdays, due 24 h
  later, 4 workers. Per trace: saving vs fcfs of greedy, joint and oracle-capacity (mean +- sd over the draws),
  their deadline misses, joint's share of the oracle's saving and the days joint emitted no more than fcfs.
- vintages: every sweep the GB forecasts as issued (2023-03-14 to -18) cover, on the GB actuals: per policy, and
  per day (fcfs, joint, joint-hedged, oracle-capacity, the clairvoyant plan, and how far the forecast known at
  arrival was off where joint ran). The clairvoyant plan knows every job and every intensity from the start: one
  integer programme, exact or with its bound; no policy can emit less.
- days: the days on which joint and joint-hedged emitted no more than fcfs, over --weeks of each trace (Let's Wait
  Awhile 2020 from March; Electricity Maps zones, EM-<zone>, from 2021-11-01), synthetic 10 % error, one draw,
  both sweeps; the share of days ok with its 95 % Wilson interval, and each policy's saving.
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
    "sweep-evening-24h": (12, "17:00", 3600.0, 4 * 3600.0, 24 * 3600.0, 2, "all"),
}
EM_START = 1635724800.0  # 2021-11-01T00:00Z
LWA_START = 1583020800.0  # 2020-03-01T00:00Z


def sweep_table(name: str, since: float, days: int, seed: int, step: float = 1800.0):
    from carbon_pipe.backtest.workload import Sweep, sweep

    count, at, shortest, longest, due, _, weekdays = WORKLOADS[name]
    shortest = max(shortest, step)
    spec = Sweep(since, since + days * DAY, count, at, (shortest, longest), due, weekdays, step=step, seed=seed)
    return sweep(spec, name)


def backtest(trace: Path, table, workers: int, seeds: int, vintages=None, policies: tuple[str, ...] = ()):
    from carbon_pipe.backtest.capacity_report import run_capacity
    from carbon_pipe.backtest.runner import Setup
    from carbon_pipe.intensity.traces import load_trace

    series = load_trace(trace, "auto", max_gap=float("inf"))
    issued = vintages is not None
    setup = Setup(policies=policies, forecast_error=None if issued else 0.1, seeds=1 if issued else seeds)
    return run_capacity(series, setup, workers, vintages, table), series


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
            rows = summary(backtest(CARBON / path, sweep_table(name, since, days, 0), workers, seeds)[0])
            g, j, o = rows["greedy"], rows["joint"], rows["oracle-capacity"]
            print(
                f"{trace:<6}{spread(g['saving']):>16}{max(g['late']):>6}{spread(j['saving']):>16}{max(j['late']):>6}"
                f"{o['saving'][0]:>10.2f}{o['late'][0]:>6}{spread(j['share']):>14}"
                f"{min(j['ok']):>5}/{j['days']:<4}{time.perf_counter() - started:>9.0f}"
            )


VINTAGE_POLICIES = ("fcfs", "greedy", "joint", "joint-hedged", "oracle-capacity")


def vintages() -> None:
    from carbon_pipe.backtest.forecasts import IssuedForecasts
    from carbon_pipe.backtest.grid import to_grid
    from carbon_pipe.intensity.traces import load_forecasts

    issued = load_forecasts(CARBON / GB_VINTAGES, "auto")
    first = float(np.floor(issued.issued.min() / DAY) * DAY)
    print("\n== GB forecasts as issued (2023-03-14 to -18) on the GB actuals; jobs due after the data ends are dropped")
    for name, (count, at, shortest, longest, due, workers, weekdays) in WORKLOADS.items():
        table = sweep_table(name, first, 6, 0)
        report, series = backtest(CARBON / GB_ACTUALS, table, workers, 1, issued, VINTAGE_POLICIES)
        grid = to_grid(series)
        bound = clairvoyant(report, series, workers)
        fcfs = report.scores[0].total_kg
        best, least = 100 * (1 - bound["total_kg"] / fcfs), 100 * (1 - bound["bound_kg"] / fcfs)
        print(f"\n{name}: {count} of {shortest / 3600:g}-{longest / 3600:g} h at {at} UTC ({weekdays}), "
              f"due {due / 3600:g} h, {workers} workers: {len(report.jobs)} jobs; "
              f"clairvoyant ({bound['method']}) saves {best:.2f} % (bound {least:.2f} %)")  # fmt: skip
        for score in report.scores:
            share = "-" if score.fraction_of_oracle is None else f"{score.fraction_of_oracle:.3f}"
            print(f"  {score.policy:<16} saving {score.saving_vs_fcfs_pct:6.2f} %  late {score.deadline_misses:3d}  "
                  f"of oracle-capacity {share:>6}  of clairvoyant {score.saving_vs_fcfs_pct / least:6.3f}  "
                  f"dirtier jobs {score.dirtier_than_fcfs:3d}  "
                  f"days not worse {score.days_not_worse}/{score.days}")  # fmt: skip
        per_day(report, grid, IssuedForecasts(grid, issued), bound["grams"])
        for note in report.notes:
            print(f"  note: {note}")


def clairvoyant(report, series, workers: int) -> dict:
    """One plan of every job on the actual intensities, made before the first arrives: the least any policy emits."""
    from carbon_pipe.backtest import capacity as cap
    from carbon_pipe.backtest.grid import to_grid
    from carbon_pipe.scheduling.joint import plan_jobs

    actual = cap.actual_series(to_grid(series))
    plan = plan_jobs(report.jobs, actual, workers, min(job.arrival for job in report.jobs))
    grams = np.array([slot.expected_g for slot in plan.slots])
    return {"total_kg": plan.total_g / 1e3, "bound_kg": plan.lower_bound_g / 1e3, "method": plan.method, "grams": grams}


def per_day(report, grid, forecasts, clairvoyant_g: np.ndarray) -> None:
    """kg per day of arrival for each policy, and the forecast's mean error (actual - the forecast known at
    arrival, g/kWh) over the half-hours joint ran in and over those fcfs ran in: where the forecast misled the plan
    (joint's hours worse than forecast while fcfs's were not)."""
    from carbon_pipe.backtest import capacity as cap
    from carbon_pipe.scheduling.joint import slot

    actual = cap.actual_series(grid)
    grams = {
        policy: np.array([slot(job, actual, spans).expected_g for job, spans in zip(report.jobs, runs)])
        for (policy, _), runs in report.runs.items()
    }  # fmt: skip
    grams["clairvoyant"] = clairvoyant_g
    day = np.floor(np.array([job.arrival for job in report.jobs]) / DAY).astype(np.int64)
    shown = ["fcfs", "joint", "joint-hedged", "oracle-capacity", "clairvoyant"]
    print(f"  {'day (arrival)':<14}" + "".join(f"{p:>17}" for p in shown) + f"{'error: joint, fcfs hours':>26}")
    for d in np.unique(day):
        mine = np.flatnonzero(day == d)
        errors = [forecast_error(report, grid, forecasts, mine, policy) for policy in ("joint", "fcfs")]
        label = time.strftime("%Y-%m-%d", time.gmtime(d * DAY))
        kg = "".join(f"{grams[p][mine].sum() / 1000:>14.3f} kg" for p in shown)
        print(f"  {label:<14}{kg}{f'{errors[0]:+.1f}, {errors[1]:+.1f}':>26}")


def forecast_error(report, grid, forecasts, jobs: np.ndarray, policy: str) -> float:
    """Mean of actual - the forecast known at the job's arrival, over the points the policy ran the jobs in."""
    found = []
    for j in jobs:
        row = int(round(grid.index(report.jobs[j].arrival)))
        for start, end in report.runs[(policy, 0)][j]:
            points = np.arange(int(round(grid.index(start))), int(round(grid.index(end))))
            known = forecasts.forecast(np.array([row]), int(points[-1] - row + 1))[0][points - row]
            found += list(grid.values[points][~np.isnan(known)] - known[~np.isnan(known)])
    return float(np.mean(found)) if found else float("nan")


def wilson(ok: int, days: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    z = 1.96
    share = ok / days
    centre = (share + z * z / (2 * days)) / (1 + z * z / days)
    half = z * np.sqrt(share * (1 - share) / days + z * z / (4 * days * days)) / (1 + z * z / days)
    return centre - half, centre + half


def trace_path(trace: str) -> tuple[Path, float, float]:
    """(path, first day, step of the sweep's durations) of a trace named DE/GB/FR (2020) or EM-<zone>."""
    if trace.startswith("EM-"):
        return CARBON / f"electricitymaps-api-scrape/{trace[3:]}.csv", EM_START, 3600.0
    return CARBON / TRACES[trace], LWA_START, 1800.0


def days_ok(traces: list[str], weeks: int) -> None:
    print(f"\n== days not worse than fcfs: {weeks} weeks per trace, synthetic 10 % error, one draw (seed 0)")
    print(f"{'trace':<9}{'workload':<19}{'days':>5}{'joint ok':>10}{'95 % interval':>16}{'hedged ok':>11}"
          f"{'95 % interval':>16}{'joint %':>9}{'hedged %':>10}{'oracle %':>10}{'hedged/oracle':>15}"
          f"{'late':>6}{'s':>6}")  # fmt: skip
    for trace in traces:
        path, since, step = trace_path(trace)
        for name in ("sweep-morning", "sweep-evening"):
            started = time.perf_counter()
            table = sweep_table(name, since, 7 * weeks, 0, step)
            policies = ("fcfs", "joint", "joint-hedged", "oracle-capacity")
            report, _ = backtest(path, table, WORKLOADS[name][5], 1, policies=policies)
            by = {score.policy: score for score in report.scores}
            joint, hedged, oracle = by["joint"], by["joint-hedged"], by["oracle-capacity"]
            low, high = wilson(joint.days_not_worse, joint.days)
            hlow, hhigh = wilson(hedged.days_not_worse, hedged.days)
            share = "-" if hedged.fraction_of_oracle is None else f"{hedged.fraction_of_oracle:.3f}"
            print(f"{trace:<9}{name:<19}{joint.days:>5}{100 * joint.days_not_worse / joint.days:>9.1f}%"
                  f"{f'{100 * low:.0f}-{100 * high:.0f} %':>16}{100 * hedged.days_not_worse / hedged.days:>10.1f}%"
                  f"{f'{100 * hlow:.0f}-{100 * hhigh:.0f} %':>16}{joint.saving_vs_fcfs_pct:>9.2f}"
                  f"{hedged.saving_vs_fcfs_pct:>10.2f}{oracle.saving_vs_fcfs_pct:>10.2f}{share:>15}"
                  f"{max(joint.deadline_misses, hedged.deadline_misses):>6}"
                  f"{time.perf_counter() - started:>6.0f}")  # fmt: skip


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
    parser.add_argument("--parts", default="savings,vintages,days,scale")
    parser.add_argument("--weeks", type=int, default=8, help="Weeks per trace for the days part.")
    parser.add_argument("--traces", default="DE,GB,FR,EM-DE,EM-GB,EM-FR,EM-CA-ON,EM-US-CAL-CISO")
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
    if "days" in parts:
        days_ok(args.traces.split(","), args.weeks)
    if "scale" in parts:
        scale(args.repeats, [int(size) for size in args.entries.split(",")])


if __name__ == "__main__":
    main()
