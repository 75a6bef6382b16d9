"""Let's Wait Awhile (Wiesner et al., Middleware'21), regenerated with `carbon-pipe workload` and scored with one
`carbon-pipe backtest` command per scenario, beside the published values in derived_figure_values.csv.

    python benchmarks/lets_wait_awhile.py [--shared ../shared] [--regions DE,GB,FR] [--seeds 10]

The scenarios, from the paper and its simulator's published description:
- Data: each region's 2020 trace as the simulator read it: from 2020-01-01 00:00, the points at :00 and :30, each
  holding 30 min. Forecasts: actual + N(0, error x the trace's mean), seeds 0-9, averaged.
- Nightly: a 30-min job at 01:00 every day (1 Jan to 30 Dec), free to move +-2/4/6/8 h; forecast-window.
- ML: 3387 jobs on workdays, arriving at 09:00-16:30 (30-min slots), lasting 4-89.5 h (30-min steps), seed 0; due
  the next workday (its own rule: a job finishing on a workday 09:00-17:00 is due then, later ones the next day
  09:00, weekends on Monday 09:00) or semi-weekly (the next Monday or Thursday 09:00). Non-interruptible:
  forecast-window; interruptible: forecast-chunks with 30-min chunks.

Four quirks of the published simulator are reproduced, and a last column scores each scenario without them:
1. Its job windows include one more 30-min slot than the deadline allows, so a job may end 30 min late:
   the workloads get `--grace 30min`.
2. Its ML baseline is not "start at arrival": it picks the better of arrival and 30 min later, with perfect
   information. Here: the oracle on the same jobs with zero slack and the same 30-min grace.
3. Its next-workday rule makes a Friday-evening finish due on Saturday 09:00 (`lets-wait-awhile-next-workday`).
4. Nightly with forecast error: its 1 Jan job, whose window opens before the data, never runs but stays in the
   baseline. Here it is dropped from both (the backtest lists it), and the published figure is recomputed by
   adding its 01:00 emissions back to the baseline. (The perfect-information nightly values were recomputed by
   the data's curators without this quirk, so those cells are compared as scored.)
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TRACES = {"DE": "ger_ci.csv", "GB": "gb_ci.csv", "FR": "fr_ci.csv"}
WINDOWS = (2, 4, 6, 8)
ML_JOBS = [
    "--from",
    "2020-01-01T00:00Z",
    "--until",
    "2021-01-01T00:00Z",
    "--count",
    "3387",
    "--arrivals",
    "09:00-16:30",
    "--durations",
    "4h-89.5h",
    "--step",
    "30min",
    "--seed",
    "0",
    "--interruptible",
]
RULES = {"next-workday": "lets-wait-awhile-next-workday", "semi-weekly": "next Mon,Thu 09:00"}
CLEAN_RULES = {
    "next-workday": ["--deadline", "next workday 09:00", "--work-hours", "09:00-17:00"],
    "semi-weekly": ["--deadline", "next Mon,Thu 09:00"],
}
TOLERANCE = 0.15


def carbon_pipe(*args: str) -> dict | list:
    """Run one carbon-pipe command; its JSON output, if any."""
    result = subprocess.run([sys.executable, "-m", "carbon_pipe.cli", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"carbon-pipe {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout) if result.stdout.strip() else {}


def published(path: Path) -> dict[tuple, float]:
    """(region, scenario, error, kind) -> published % saved, from derived_figure_values.csv."""
    values = {}
    for row in csv.DictReader(open(path)):
        region = row["region"]
        if row["experiment"] == "scenario1_nightly":
            values[region, f"nightly +-{row['setting'].split('+-')[1]}", 0.05, "window"] = float(
                row["value_pct_emissions_saved"]
            )
        elif row["experiment"] == "scenario1_nightly_oracle_recomputed":
            for hours, value in zip(WINDOWS, row["value_pct_emissions_saved"].split("/")):
                values[region, f"nightly +-{hours}h", 0.0, "window"] = float(value)
        elif row["experiment"] == "scenario2_ml":
            rule = row["setting"].split()[0]
            plain, chunked = (float(v) for v in row["value_pct_emissions_saved"].split(" / "))
            values[region, f"ML {rule}", 0.05, "non-interr."], values[region, f"ML {rule}", 0.05, "interr."] = (
                plain,
                chunked,
            )
        elif row["experiment"] == "scenario2_ml_error_sweep":
            chunked = row["value_pct_emissions_saved"].split(" / ")
            plain = row["notes"].split(": ")[1].split(" / ")
            for error, a, b in zip((0.0, 0.05, 0.1), plain, chunked):
                (
                    values[region, "ML next-workday", error, "non-interr."],
                    values[region, "ML next-workday", error, "interr."],
                ) = float(a), float(b)
    return values


def lwa_trace(source: Path, target: Path) -> pd.Series:
    """The trace as the simulator read it: from 2020-01-01, the points at :00 and :30."""
    frame = pd.read_csv(source)
    times = pd.to_datetime(frame["Time"])
    kept = frame[(times >= "2020-01-01") & (times.dt.minute % 30 == 0)]
    kept.to_csv(target, index=False)
    return pd.Series(kept["Carbon Intensity"].to_numpy(), index=pd.to_datetime(kept["Time"]))


def scored(trace: Path, jobs: Path, error: float, seeds: int, *policies: str) -> dict[str, dict]:
    args = [
        "backtest",
        "--trace",
        str(trace),
        "--jobs",
        str(jobs),
        "--policy",
        ",".join(policies),
        "--min-chunk",
        "30min",
        "--json",
    ]
    args += ["--forecast-error", str(error), "--seeds", str(seeds if error else 1)]
    results = carbon_pipe(*args)
    return {r["policy"]: r for r in (results if isinstance(results, list) else [results])}


def nightly(region: str, trace: Path, values: pd.Series, folder: Path, seeds: int) -> list[tuple]:
    rows = []
    for hours in WINDOWS:
        jobs = folder / f"nightly_{hours}h.csv"
        carbon_pipe(
            "workload",
            "periodic",
            "-o",
            str(jobs),
            "--from",
            "2020-01-01T00:00Z",
            "--until",
            "2020-12-31T00:00Z",
            "--at",
            "01:00",
            "--window",
            f"{hours}h",
            "--duration",
            "30min",
        )
        for error in (0.0, 0.05):
            result = scored(trace, jobs, error, seeds, "forecast-window")["forecast-window"]
            clean = result["savings_pct"]
            as_published = clean
            if error:  # quirk 3: the dropped 1 Jan job stays in the published baseline
                first_night = values[pd.Timestamp("2020-01-01 01:00")] * 0.5 / 1000
                as_published = 100 * (1 - result["total_kg"] / (result["baseline_total_kg"] + first_night))
            rows.append((region, f"nightly +-{hours}h", error, "window", as_published, clean, result))
    return rows


def machine_learning(region: str, trace: Path, folder: Path, seeds: int) -> list[tuple]:
    baseline_jobs = folder / "ml_baseline.csv"
    carbon_pipe("workload", "adhoc", "-o", str(baseline_jobs), *ML_JOBS, "--deadline", "finish", "--grace", "30min")
    lwa_baseline = scored(trace, baseline_jobs, 0.0, 1, "oracle")["oracle"]["total_kg"]  # quirk 2
    rows = []
    for rule, deadline in RULES.items():
        jobs, clean_jobs = folder / f"ml_{rule}.csv", folder / f"ml_{rule}_clean.csv"
        carbon_pipe(
            "workload", "adhoc", "-o", str(jobs), *ML_JOBS, "--deadline", deadline, "--grace", "30min"
        )  # quirk 1
        carbon_pipe("workload", "adhoc", "-o", str(clean_jobs), *ML_JOBS, *CLEAN_RULES[rule])
        for error in (0.0, 0.05, 0.1) if rule == "next-workday" else (0.05,):
            result = scored(trace, jobs, error, seeds, "forecast-window", "forecast-chunks")
            clean = scored(trace, clean_jobs, error, seeds, "forecast-window", "forecast-chunks")
            for kind, policy in (("non-interr.", "forecast-window"), ("interr.", "forecast-chunks")):
                as_published = 100 * (1 - result[policy]["total_kg"] / lwa_baseline)
                rows.append(
                    (region, f"ML {rule}", error, kind, as_published, clean[policy]["savings_pct"], result[policy])
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--regions", default="DE,GB,FR")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    folder_in = args.shared / "data" / "carbon" / "lets-wait-awhile"
    reference = published(folder_in / "derived_figure_values.csv")
    started, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="lwa-") as scratch:
        for region in args.regions.split(","):
            folder = Path(scratch) / region
            folder.mkdir()
            trace = folder / "trace.csv"
            values = lwa_trace(folder_in / TRACES[region], trace)
            rows += nightly(region, trace, values, folder, args.seeds) + machine_learning(
                region, trace, folder, args.seeds
            )
    text, worst = report(rows, reference, time.perf_counter() - started)
    print(text)
    sys.exit(0 if worst <= TOLERANCE else 1)


def report(rows: list[tuple], reference: dict, seconds: float) -> tuple[str, float]:
    lines = [
        "| region | scenario | error | policy | published % | here, as published % | diff pp | sd over seeds "
        "| here, without the quirks % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst, compared = 0.0, 0
    for region, scenario, error, kind, ours, clean, result in rows:
        key = (region, scenario, error, kind)
        if key not in reference:
            continue
        diff = ours - reference[key]
        worst, compared = max(worst, abs(diff)), compared + 1
        spread = f"{result['savings_pct_sd']:.3f}" if result["seeds"] > 1 else "-"
        lines.append(
            f"| {region} | {scenario} | {error:.0%} | {kind} | {reference[key]:.2f} | {ours:.2f} | {diff:+.2f} "
            f"| {spread} | {clean:.2f} |"
        )
    within = "all within" if worst <= TOLERANCE else "NOT all within"
    lines.append(
        f"\n{compared} published cells compared: largest difference {worst:.2f} pp ({within} {TOLERANCE} pp); "
        f"{seconds:.0f} s"
    )
    return "\n".join(lines), worst


if __name__ == "__main__":
    main()
