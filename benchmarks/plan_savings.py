"""Plan savings on a week of a real trace: flexible vs interruptible vs threshold, through the csv source.

    python benchmarks/plan_savings.py [--trace ../shared/data/carbon/lets-wait-awhile/gb_ci.csv] [--week 2020-03-02]

A job arrives every hour of the week; each policy plans it with the pipeline's own planner on the trace (the
recorded values serve as a perfect forecast, so these are upper bounds for real forecasts). Saving = 1 - (sum of
the jobs' emissions under the policy) / (sum when each starts on arrival); emissions are proportional to the
integral of intensity over the time the job runs (constant power).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from carbon_pipe.config.carbon import CarbonParams
from carbon_pipe.intensity.sources import get_source
from carbon_pipe.scheduling import planner
from carbon_pipe.timeutil import parse_instant

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = REPO.parent / "shared" / "data" / "carbon" / "lets-wait-awhile" / "gb_ci.csv"
HOUR = 3600.0


def policies(threshold_levels: list[float]):
    """name -> plan(series, arrival, slack, duration)."""
    table = {
        "flexible": lambda s, t, slack, d: planner.lowest_mean_start(s, t, t + slack, d),
        "interruptible": lambda s, t, slack, d: planner.interruptible_plan(s, t, t + slack + d, d),
        "interruptible, 1 h chunks": lambda s, t, slack, d: planner.interruptible_plan(
            s, t, t + slack + d, d, min_chunk=HOUR
        ),
    }
    for level in threshold_levels:
        table[f"threshold {level:.0f}"] = lambda s, t, slack, d, level=level: planner.threshold_start(
            s, t, t + slack, d, level
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--preset", default="lets-wait-awhile")
    parser.add_argument("--week", default="2020-03-02", help="first day (UTC) of the week of arrivals")
    parser.add_argument("--durations", default="1,4,12", help="job lengths in hours")
    parser.add_argument("--slacks", default="12,24", help="allowed delays in hours")
    args = parser.parse_args()

    carbon = CarbonParams.model_validate({"sources": ["csv"], "csv": {"path": str(args.trace), "preset": args.preset}})
    week = parse_instant(f"{args.week}T00:00:00Z")
    durations = [float(h) * HOUR for h in args.durations.split(",")]
    slacks = [float(h) * HOUR for h in args.slacks.split(",")]
    series = get_source(carbon).series(week, week + 7 * 24 * HOUR + max(slacks) + max(durations))
    arrivals = week + HOUR * np.arange(7 * 24)
    week_values = series.values[(series.boundaries[:-1] >= week) & (series.boundaries[:-1] < week + 7 * 24 * HOUR)]
    levels = [float(np.median(week_values)), 250.0, 300.0]  # the week's median, ours, the reference's
    print(f"{args.trace.name} ({args.preset}), week from {args.week}: {len(arrivals)} hourly arrivals, "
          f"intensity {week_values.min():.0f}-{week_values.max():.0f} g/kWh, median {levels[0]:.0f}")
    print()
    print("| job | slack | " + " | ".join(policies(levels)) + " |")
    print("|---|---|" + "---|" * len(policies(levels)))
    started = time.perf_counter()
    for duration in durations:
        for slack in slacks:
            now_total = sum(series.mean(t, t + duration) for t in arrivals) * duration
            cells = []
            for name, plan in policies(levels).items():
                total = sum(plan(series, t, slack, duration).expected_mean_intensity for t in arrivals) * duration
                cells.append(f"{100 * (1 - total / now_total):.1f} %")
            print(f"| {duration / HOUR:g} h | {slack / HOUR:g} h | " + " | ".join(cells) + " |")
    print(
        f"\n{len(durations) * len(slacks) * len(arrivals) * len(policies(levels))} plans "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
