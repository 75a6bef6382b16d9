"""Backtest report on the shared carbon traces: prints the markdown tables of docs/results.md's
"Backtest: policies on the shared traces".

    python benchmarks/backtest_report.py [--shared ../shared]

Synthetic forecasts have 10 % error (seed 0) unless a table says otherwise. Timings are wall-clock seconds on
this machine, one fresh `score` per policy (so each includes working out what the policy knows).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from carbon_pipe import backtest as bt
from carbon_pipe.backtest.forecasts import SyntheticForecasts
from carbon_pipe.backtest.grid import Grid, period, to_grid
from carbon_pipe.backtest.jobs import periodic
from carbon_pipe.backtest.scoring import PolicyScore, evaluate
from carbon_pipe.intensity.traces import load_forecasts, load_trace
from carbon_pipe.timeutil import parse_instant

HOUR = 3600.0
YEAR_2020 = (parse_instant("2020-01-01T00:00:00Z"), parse_instant("2021-01-01T00:00:00Z"))
MAIN_SCRAPE_ZONES = ("DE", "GB", "FR", "CA-ON", "US-CAL-CISO")
POLICIES = ("forecast-window", "rolling", "interruptible", "oracle", "oracle-interruptible")


class Zone:
    """A whole trace on its grid and the period scored: jobs arrive in [first, end); earlier data is history."""

    def __init__(self, grid: Grid, since: float | None = None, until: float | None = None) -> None:
        self.grid, (self.first, self.end) = grid, period(grid, since, until)
        self.values = grid.values[self.first : self.end]
        self.step = grid.step


def zones(carbon: Path) -> dict[str, Zone]:
    """name -> zone: DE/GB/FR 2020 first, then every Electricity Maps scrape."""
    found = {}
    for name, file in (("DE 2020", "ger_ci.csv"), ("GB 2020", "gb_ci.csv"), ("FR 2020", "fr_ci.csv")):
        found[name] = Zone(to_grid(load_trace(carbon / "lets-wait-awhile" / file, "lets-wait-awhile")), *YEAR_2020)
    for path in sorted((carbon / "electricitymaps-api-scrape").glob("*.csv")):
        found[f"EM {path.stem}"] = Zone(to_grid(load_trace(path, "electricitymaps-scrape", max_gap=math.inf)))
    return found


def jobs_of(zone: Zone, duration: float, slack: float):
    return periodic(zone.grid, duration * HOUR, slack * HOUR, HOUR, zone.first, zone.end)


def scores(
    zone: Zone, duration: float, slack: float, policies=POLICIES, error=0.1, threshold=None
) -> dict[str, PolicyScore]:
    forecasts = SyntheticForecasts(zone.grid, error, 0)
    min_chunk = max(1, int(np.ceil(HOUR / zone.step)))
    evaluation = evaluate(list(policies), zone.grid, jobs_of(zone, duration, slack), [forecasts], threshold, min_chunk)
    return {s.policy: s for s in evaluation.scores}


def fraction(score: PolicyScore) -> str:
    return "-" if score.fraction_of_oracle is None else f"{score.fraction_of_oracle:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def grid_of_jobs(all_zones: dict) -> str:
    main = [name for name in all_zones if not name.startswith("EM ") or name[3:] in MAIN_SCRAPE_ZONES]
    rows = []
    for duration in (1, 4, 12):
        for slack in (12, 24, 48):
            per_zone = [scores(all_zones[name], duration, slack) for name in main]

            def mean(policy: str, key: str) -> float:
                return float(np.mean([getattr(s[policy], key) for s in per_zone]))

            rows.append(
                [f"{duration} h", f"{slack} h", f"{mean('oracle', 'savings_pct'):.1f}"]
                + [
                    f"{mean(p, 'savings_pct'):.1f} ({mean(p, 'fraction_of_oracle'):.3f})"
                    for p in ("forecast-window", "rolling")
                ]
                + [
                    f"{mean('oracle-interruptible', 'savings_pct'):.1f}",
                    f"{mean('interruptible', 'savings_pct'):.1f} ({mean('interruptible', 'fraction_of_oracle'):.3f})",
                ]
            )
    header = [
        "job",
        "slack",
        "oracle %",
        "forecast-window % (of oracle)",
        "rolling % (of oracle)",
        "oracle-interr. %",
        "interruptible % (of oracle-interr.)",
    ]
    return f"Mean over {len(main)} zones ({', '.join(main)}), synthetic forecasts with 10 % error:\n\n" + table(
        header, rows
    )


def per_zone(all_zones: dict) -> str:
    rows, fractions = [], {"forecast-window": [], "rolling": []}
    main_fractions = {"forecast-window": [], "rolling": []}
    for name, grid in all_zones.items():
        s = scores(grid, 4, 24)
        rows.append(
            [
                name,
                format(len(grid.values) * grid.step / 86400, ".0f"),
                f"{s['oracle'].savings_pct:.1f}",
                fraction(s["forecast-window"]),
                fraction(s["rolling"]),
                fraction(s["interruptible"]),
            ]
        )
        for policy in fractions:
            fractions[policy].append(s[policy].fraction_of_oracle)
            if not name.startswith("EM ") or name[3:] in MAIN_SCRAPE_ZONES:
                main_fractions[policy].append(s[policy].fraction_of_oracle)
    for label, values in (
        (f"mean of the {len(main_fractions['rolling'])} zones above", main_fractions),
        (f"mean of all {len(rows)} zones", fractions),
    ):
        rows.append(
            [
                f"**{label}**",
                "",
                "",
                f"{np.mean(values['forecast-window']):.3f}",
                f"{np.mean(values['rolling']):.3f}",
                "",
            ]
        )
    header = ["zone", "days", "oracle %", "forecast-window", "rolling", "interruptible"]
    return "4 h jobs, 24 h slack, 10 % synthetic error: fraction of the oracle captured\n\n" + table(header, rows)


def error_sweep(all_zones: dict) -> str:
    rows = []
    for error in (0.0, 0.05, 0.1, 0.2, 0.4):
        per = [
            scores(all_zones[name], 4, 24, ("forecast-window", "rolling", "oracle"), error)
            for name in ("DE 2020", "GB 2020", "FR 2020")
        ]
        rows.append(
            [f"{error:.0%}"]
            + [f"{np.mean([s[p].fraction_of_oracle for s in per]):.3f}" for p in ("forecast-window", "rolling")]
        )
    return "Forecast error vs fraction of the oracle (4 h jobs, 24 h slack, mean of DE/GB/FR 2020)\n\n" + table(
        ["error", "forecast-window", "rolling"], rows
    )


def threshold_rule(all_zones: dict) -> str:
    """The reference rule with thresholds picked in hindsight from the whole trace: as kind to it as it gets."""
    rows = []
    for name in ("DE 2020", "GB 2020", "FR 2020", "EM DE", "EM US-CAL-CISO"):
        grid = all_zones[name]
        cells = [name]
        for quantile in (25, 50):
            limit = float(np.percentile(grid.values, quantile))
            s = scores(grid, 4, 24, ("threshold", "forecast-window", "oracle"), threshold=limit)
            rule = s["threshold"]
            cells.append(f"{rule.savings_pct:.1f} ({fraction(rule)}, waits {rule.mean_wait_hours:.1f} h)")
        cells += [f"{s['forecast-window'].savings_pct:.1f}", f"{s['oracle'].savings_pct:.1f}"]
        rows.append(cells)
    header = ["zone", "threshold = 25th pct", "threshold = median", "forecast-window", "oracle"]
    return (
        "Reference threshold rule, 4 h jobs, 24 h slack, 10 % error: savings % (of oracle)\n\n"
        "Thresholds are percentiles of the whole trace, chosen in hindsight (which flatters the rule).\n\n"
        + table(header, rows)
    )


def interruption_gap(all_zones: dict) -> str:
    rows = []
    for name in all_zones:
        if name.startswith("EM ") and name[3:] not in MAIN_SCRAPE_ZONES:
            continue
        s = scores(all_zones[name], 12, 24)
        rows.append(
            [
                name,
                f"{s['forecast-window'].savings_pct:.1f}",
                f"{s['interruptible'].savings_pct:.1f}",
                f"{s['interruptible'].savings_pct - s['forecast-window'].savings_pct:+.1f}",
                f"{s['oracle'].savings_pct:.1f}",
                f"{s['oracle-interruptible'].savings_pct:.1f}",
                f"{s['oracle-interruptible'].savings_pct - s['oracle'].savings_pct:+.1f}",
            ]
        )
    header = ["zone", "forecast-window %", "interruptible %", "gap pp", "oracle %", "oracle-interr. %", "gap pp"]
    return "12 h jobs, 24 h slack, 1 h minimum chunk, 10 % error: what interrupting adds\n\n" + table(header, rows)


def published_anchors(all_zones: dict) -> str:
    """Sukprasert et al. (EuroSys'24), 24 h slack, oracle, mean over 123 regions in 2022 (data README section 3)."""
    short = [scores(grid, 1, 24, ("oracle",))["oracle"].savings_pct for grid in all_zones.values()]
    long = [scores(grid, 12, 24, ("oracle", "oracle-interruptible")) for grid in all_zones.values()]
    rows = [
        ["1 h job, defer only", "15.6", f"{np.mean(short):.1f}", f"{np.median(short):.1f}"],
        [
            "12 h job, defer only",
            "8.5",
            f"{np.mean([s['oracle'].savings_pct for s in long]):.1f}",
            f"{np.median([s['oracle'].savings_pct for s in long]):.1f}",
        ],
        [
            "12 h job, interrupting adds (pp)",
            "2.7",
            f"{np.mean([s['oracle-interruptible'].savings_pct - s['oracle'].savings_pct for s in long]):.1f}",
            f"{np.median([s['oracle-interruptible'].savings_pct - s['oracle'].savings_pct for s in long]):.1f}",
        ],
    ]
    header = ["24 h slack, oracle", "Sukprasert 2024 (123 regions)", f"here: mean of {len(short)} zones", "median"]
    return "Hindsight optimum against the published anchor\n\n" + table(header, rows)


def real_forecasts(carbon: Path) -> str:
    folder = carbon / "uk-carbon-intensity-forecasts"
    actuals = load_trace(folder / "gb_national_actuals_2023-03-14_2023-03-19.csv", "uk-actuals")
    vintages = load_forecasts(folder / "gb_national_forecast_vintages_2023-03-14_2023-03-18.csv", "uk-vintages")
    rows = []
    for duration in (1, 3, 6):
        for slack in (12, 24, 48):
            setup = bt.Setup(("forecast-window", "rolling", "oracle"), duration * HOUR, slack * HOUR, 0.5 * HOUR)
            s = {r["policy"]: r for r in bt.run(actuals, setup, vintages).as_dicts()}
            rows.append(
                [
                    f"{duration} h",
                    f"{slack} h",
                    str(s["oracle"]["jobs"]),
                    f"{s['oracle']['savings_pct']:.1f}",
                    f"{s['forecast-window']['fraction_of_oracle']:.3f}",
                    f"{s['rolling']['fraction_of_oracle']:.3f}",
                ]
            )
    gb = "GB national, NESO forecasts as issued (33 vintages, 2023-03-14..18), a job every 30 min\n\n" + table(
        ["job", "slack", "jobs", "oracle %", "forecast-window (one-shot)", "rolling"], rows
    )
    folder = carbon / "watttime-caiso-north"
    actuals = load_trace(folder / "watttime2023_caiso-north_actual.csv", "watttime-caiso")
    vintages = load_forecasts(folder / "watttime2023_caiso-north_forecast.csv", "watttime-caiso")
    rows = []
    for slack in (1, 4, 12):
        setup = bt.Setup(("forecast-window", "rolling", "oracle"), HOUR, slack * HOUR, HOUR)
        s = {r["policy"]: r for r in bt.run(actuals, setup, vintages).as_dicts()}
        rows.append(
            [
                "1 h",
                f"{slack} h",
                str(s["oracle"]["jobs"]),
                f"{s['oracle']['savings_pct']:.1f}",
                f"{s['forecast-window']['fraction_of_oracle']:.3f}",
                f"{s['rolling']['fraction_of_oracle']:.3f}",
            ]
        )
    caiso = (
        "WattTime CAISO_NORTH MOER, forecasts as issued every 5 min for the next 65 min (2023-06-08..07-08)\n\n"
        + table(["job", "slack", "jobs", "oracle %", "forecast-window (one-shot)", "rolling"], rows)
    )
    return gb + "\n\n" + caiso


def timings(all_zones: dict) -> str:
    rows = []
    for name, duration, slack in (("EM DE", 4, 24), ("EM DE", 12, 48), ("DE 2020", 4, 24), ("DE 2020", 12, 48)):
        zone = all_zones[name]
        jobs = jobs_of(zone, duration, slack)
        forecasts = SyntheticForecasts(zone.grid, 0.1, 0)
        cells = [f"{name} ({format(zone.step / 60, '.0f')}-min points)", f"{len(jobs)}", f"{duration} h / {slack} h"]
        for policy in bt.POLICIES:
            started = time.perf_counter()
            evaluate(
                [policy],
                zone.grid,
                jobs,
                [forecasts],
                threshold=300.0,
                min_chunk=max(1, int(np.ceil(HOUR / zone.step))),
            )
            cells.append(f"{time.perf_counter() - started:.2f}")
        rows.append(cells)
    header = ["trace", "jobs", "job / slack", *bt.POLICIES]
    return "Seconds per policy (one fresh run each, 2-core machine)\n\n" + table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    carbon = parser.parse_args().shared / "data" / "carbon"
    all_zones = zones(carbon)
    for section in (grid_of_jobs, per_zone, error_sweep, threshold_rule, interruption_gap, published_anchors):
        print(section(all_zones), end="\n\n", flush=True)
    print(real_forecasts(carbon), end="\n\n", flush=True)
    print(timings(all_zones), flush=True)


if __name__ == "__main__":
    main()
