"""Backtests of jobs files: independent brute force, the baseline, dropped jobs, bad rows, forecast draws, limits."""

import csv
import inspect
import itertools
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.backtest.choices import cheapest_points
from carbon_pipe.backtest.files import load_jobs
from carbon_pipe.backtest.forecasts import SyntheticForecasts
from carbon_pipe.backtest.grid import to_grid
from carbon_pipe.backtest.jobs import place
from carbon_pipe.backtest.policies import POLICIES
from carbon_pipe.backtest.scoring import evaluate
from carbon_pipe.cli import app
from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.scheduling import planner

from ..conftest import CARBON_DATA

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def stamp(hours: float) -> str:
    return (START + timedelta(seconds=round(hours * 3600))).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_trace(path, values, step_hours: float = 1.0):
    rows = ["timestamp,carbon_intensity"] + [f"{stamp(i * step_hours)},{v!r}" for i, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_jobs(
    path, rows, columns=("id", "arrival", "duration", "deadline", "slack", "nominal_start", "interruptible")
):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def backtest(*args):
    return CliRunner().invoke(app, ["backtest", *map(str, args)])


def read_per_job(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def random_jobs(rng, hours: int, count: int):
    """Rows on whole hours: 1-4 h jobs with 0-6 h of slack, half by deadline and half by slack, some interruptible."""
    rows, truth = [], []
    for j in range(count):
        duration, slack = int(rng.integers(1, 5)), int(rng.integers(0, 7))
        arrival = int(rng.integers(0, hours - duration - slack))
        interruptible = bool(rng.integers(0, 2))
        by_deadline = j % 2 == 0
        deadline = stamp(arrival + duration + slack) if by_deadline else ""
        rows.append(
            [
                f"job{j}",
                stamp(arrival),
                f"{duration}h",
                deadline,
                "" if by_deadline else f"{slack}h",
                "",
                str(interruptible).lower(),
            ]
        )
        truth.append((f"job{j}", arrival, duration, slack, interruptible))
    return rows, truth


def cheapest_by_enumeration(values, first: int, duration: int, slack: int, min_chunk: int, splittable: bool) -> float:
    """Plain loops: every set of `duration` hours in the window whose runs are all >= min_chunk (one run if not
    splittable)."""
    best = math.inf
    for chosen in itertools.combinations(range(first, first + duration + slack), duration):
        runs, length = [], 1
        for before, after in zip(chosen, chosen[1:]):
            if after == before + 1:
                length += 1
            else:
                runs.append(length)
                length = 1
        runs.append(length)
        if (len(runs) == 1 or splittable) and min(runs) >= min(min_chunk, duration):
            best = min(best, sum(values[h] for h in chosen))
    return best


@pytest.mark.parametrize("seed, min_chunk", [(0, 1), (1, 2), (2, 1), (3, 2)])
def test_oracles_on_a_jobs_file_equal_an_independent_brute_force(tmp_path, seed, min_chunk):
    rng = np.random.default_rng(seed)
    values = [round(float(v), 3) for v in 300 + 120 * np.sin(np.arange(72) / 24 * 2 * np.pi) + rng.normal(0, 40, 72)]
    rows, truth = random_jobs(rng, 72, 40)
    trace, jobs = write_trace(tmp_path / "trace.csv", values), write_jobs(tmp_path / "jobs.csv", rows)
    per_job = tmp_path / "per_job.csv"
    result = backtest(
        "--trace",
        trace,
        "--jobs",
        jobs,
        "--policy",
        "oracle,oracle-interruptible",
        "--min-chunk",
        f"{min_chunk}h",
        "--per-job",
        per_job,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    scored = {(row["policy"], row["id"]): float(row["emissions_kg"]) for row in read_per_job(per_job)}
    for name, arrival, duration, slack, splittable in truth:
        single = cheapest_by_enumeration(values, arrival, duration, slack, duration, False)
        chunked = cheapest_by_enumeration(values, arrival, duration, slack, min_chunk, splittable)
        assert scored["oracle", name] == pytest.approx(single / 1000, rel=1e-12)
        assert scored["oracle-interruptible", name] == pytest.approx(chunked / 1000, rel=1e-12)
    totals = {r["policy"]: r for r in json.loads(result.stdout)}
    baseline = sum(sum(values[a : a + d]) for _, a, d, _, _ in truth)
    brute = sum(cheapest_by_enumeration(values, a, d, s, min_chunk, i) for _, a, d, s, i in truth)
    assert totals["oracle-interruptible"]["savings_pct"] == pytest.approx(100 * (1 - brute / baseline), abs=1e-9)
    assert totals["oracle-interruptible"]["savings_pct"] > totals["oracle"]["savings_pct"] > 1  # something to find


def test_a_job_with_zero_slack_scores_exactly_the_baseline():
    rng = np.random.default_rng(4)
    hours = 24 * 20
    values = np.clip(300 + 100 * np.sin(np.arange(hours) / 24 * 2 * np.pi) + rng.normal(0, 30, hours), 1, None)
    series = IntensitySeries(1.7e9 + 3600.0 * np.arange(hours + 1), values, np.zeros(hours, dtype=bool), "test", "XX")
    grid = to_grid(series)
    count = 300
    arrival = 1.7e9 + 3600.0 * rng.integers(24, hours - 60, count)
    duration = 3600.0 * rng.integers(1, 13, count)
    slack = np.where(np.arange(count) % 3 == 0, 0.0, 3600.0 * rng.integers(1, 30, count))
    from carbon_pipe.backtest.jobs import JobTable

    table = JobTable(
        np.arange(count).astype(str),
        arrival,
        duration,
        arrival + duration + slack,
        arrival,
        rng.integers(0, 2, count) == 1,
    )
    jobs = place(table, grid).jobs
    draws = [SyntheticForecasts(grid, 0.3, seed) for seed in (0, 1)]
    evaluation = evaluate(list(POLICIES), grid, jobs, draws, threshold=300.0, min_chunk=2, keep_runs=True)
    fixed = jobs.slack == 0
    assert fixed.sum() == 100
    for policy, _, outcome in evaluation.runs:
        assert np.array_equal(outcome.cost[fixed], evaluation.baseline.cost[fixed]), policy  # exactly, not nearly
        assert not np.array_equal(outcome.cost, evaluation.baseline.cost) or policy == "now"


def test_dropped_jobs_are_listed_and_jobs_outside_the_data_counted(tmp_path):
    trace = write_trace(tmp_path / "trace.csv", [300.0 + 10 * (h % 24) for h in range(48)])
    rows = [
        ["fits", stamp(2), "2h", "", "4h", "", "true"],
        ["early", stamp(-2), "2h", "", "4h", "", "true"],  # its window opens before the data
        ["late", stamp(44), "2h", "", "4h", "", "true"],  # its deadline is after the data
        ["elsewhere", stamp(100), "2h", "", "4h", "", "true"],  # wholly outside the data
    ]
    jobs = write_jobs(tmp_path / "jobs.csv", rows)
    table = backtest("--trace", trace, "--jobs", jobs, "--policy", "oracle")
    assert table.exit_code == 0, table.stderr
    assert "dropped 2 jobs (not scored):" in table.stdout
    assert "early: its window opens before the data starts (2024-01-01T00:00:00.000000Z)" in table.stdout
    assert "late: its deadline is after the data ends (2024-01-03T00:00:00.000000Z)" in table.stdout
    assert "note: 1 jobs arrive outside the period or the data, and are not scored" in table.stdout
    result = json.loads(backtest("--trace", trace, "--jobs", jobs, "--policy", "oracle", "--json").stdout)
    assert result["jobs"] == 1 and [d["id"] for d in result["dropped"]] == ["early", "late"]


def test_jobs_off_the_grid_are_rounded_and_said_so(tmp_path):
    trace = write_trace(tmp_path / "trace.csv", [100.0, 500, 500, 100, 100, 500, 500, 500])
    jobs = write_jobs(tmp_path / "jobs.csv", [["a", "2024-01-01T00:13:00Z", "1:02:03", "", "2h", "", "false"]])
    per_job = tmp_path / "per_job.csv"
    result = backtest("--trace", trace, "--jobs", jobs, "--policy", "oracle", "--per-job", per_job)
    assert result.exit_code == 0, result.stderr
    assert "note: 1 jobs put on the trace's 1h steps: arrival rounded up, duration up, slack down" in result.stdout
    row = read_per_job(per_job)[0]  # arrival 01:00, 2 h, slack 2 h: the cheapest window is 03:00-05:00
    assert row["runs"] == "2024-01-01T03:00:00Z/2024-01-01T05:00:00Z"
    assert float(row["wait_hours"]) == 2 and float(row["emissions_kg"]) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "row, message",
    [
        (["a", "yesterday", "1h", "", "1h", "", "true"], "row 2: arrival 'yesterday': not an ISO-8601 time"),
        (["a", stamp(1), "an hour", "", "1h", "", "true"], "row 2: duration 'an hour': not a duration"),
        (["a", stamp(1), "0s", "", "1h", "", "true"], "row 2: duration '0s': must be positive"),
        (
            ["a", stamp(1), "1h", stamp(9), "1h", "", "true"],
            "row 2: deadline '2024-01-01T09:00:00Z': give a deadline or a slack, not both",
        ),
        (["a", stamp(1), "1h", "", "", "", "true"], "row 2: deadline '': missing (give a deadline or a slack)"),
        (
            ["a", stamp(1), "3h", stamp(3), "", "", "true"],
            "row 2: deadline '2024-01-01T03:00:00Z': leaves no room for the job",
        ),
        (["a", stamp(1), "1h", "", "-1h", "", "true"], "row 2: slack '-1h': not a duration"),
        (
            ["a", stamp(1), "1h", "", "2h", stamp(0), "true"],
            "row 2: nominal_start '2024-01-01T00:00:00Z': is before the arrival",
        ),
        (
            ["a", stamp(1), "1h", "", "1h", stamp(3), "true"],
            "row 2: nominal_start '2024-01-01T03:00:00Z': leaves no room",
        ),
        (["a", stamp(1), "1h", "", "2h", "", "maybe"], "row 2: interruptible 'maybe': not true or false"),
    ],
)
def test_a_bad_row_is_one_line_naming_it(tmp_path, row, message):
    trace = write_trace(tmp_path / "trace.csv", [300.0] * 48)
    good = ["ok", stamp(1), "1h", "", "1h", "", "true"]
    jobs = write_jobs(tmp_path / "jobs.csv", [row, good])
    result = backtest("--trace", trace, "--jobs", jobs)
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_bad_jobs_file_is_one_line(tmp_path):
    trace = write_trace(tmp_path / "trace.csv", [300.0] * 48)
    cases = {
        "unknown column 'dealine'": write_jobs(
            tmp_path / "a.csv", [[stamp(1), "1h", stamp(5)]], ("arrival", "duration", "dealine")
        ),
        "row 3: id 'x': appears twice": write_jobs(
            tmp_path / "b.csv", [["x", stamp(1), "1h", "2h"]] * 2, ("id", "arrival", "duration", "slack")
        ),
        "no column 'duration'": write_jobs(tmp_path / "c.csv", [[stamp(1), "2h"]], ("arrival", "slack")),
        "no such jobs file": tmp_path / "missing.csv",
        "--duration: not used with a jobs table": write_jobs(
            tmp_path / "d.csv", [[stamp(1), "1h", "2h"]], ("arrival", "duration", "slack")
        ),
    }
    for message, path in cases.items():
        extra = ["--duration", "2h"] if message.startswith("--duration") else []
        result = backtest("--trace", trace, "--jobs", path, *extra)
        assert result.exit_code == 2 and message in result.stderr, (message, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_sacct_durations_and_naive_times_load(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.csv",
        [["1", "2024-01-01T09:13:22", "1-02:03:04", "", "12h"]],
        ("id", "arrival", "duration", "deadline", "slack"),
    )
    table = load_jobs(jobs)
    assert table.duration[0] == 86400 + 2 * 3600 + 3 * 60 + 4
    assert table.arrival[0] == START.timestamp() + 9 * 3600 + 13 * 60 + 22  # no offset: UTC
    assert table.deadline[0] == table.arrival[0] + table.duration[0] + 12 * 3600
    assert table.interruptible[0]  # without the column every job may be interrupted


def test_noise_is_relative_to_the_whole_trace_and_belongs_to_its_points(tmp_path):
    rng = np.random.default_rng(5)
    values = [
        round(float(v), 2) for v in 300 + 150 * np.sin(np.arange(24 * 12) / 24 * 2 * np.pi) + rng.normal(0, 20, 24 * 12)
    ]
    values[:24] = [900.0] * 24  # a dirty first day: the whole trace's mean is not the slice's
    trace = write_trace(tmp_path / "trace.csv", values)
    runs = {}
    for name, since in (("whole", []), ("slice", ["--from", stamp(24 * 6)])):
        per_job = tmp_path / f"{name}.csv"
        result = backtest(
            "--trace",
            trace,
            "--duration",
            "3h",
            "--slack",
            "12h",
            "--policy",
            "forecast-window,rolling",
            "--forecast-error",
            "0.2",
            "--per-job",
            per_job,
            "--json",
            *since,
        )
        assert result.exit_code == 0, result.stderr
        runs[name] = (json.loads(result.stdout), {(r["policy"], r["start"]): r["runs"] for r in read_per_job(per_job)})
    whole, part = runs["whole"], runs["slice"]
    mean = float(np.mean(values))
    assert (
        whole[0][0]["forecast"]
        == part[0][0]["forecast"]
        == f"synthetic: actual + N(0, {0.2 * mean:.2f} g/kWh: 0.2 x mean {mean:.1f} g/kWh of the whole trace), seed 0"
    )
    # the period chooses the jobs, not what is known: a job in both runs is decided the same way by both policies
    common = set(part[1]) & set(whole[1])
    assert len(common) == len(part[1]) > 100
    fixed = backtest("--trace", trace, "--policy", "forecast-window", "--forecast-error-g", "12.5", "--json")
    assert "N(0, 12.50 g/kWh: as given)" in json.loads(fixed.stdout)["forecast"]


def test_seeds_average_the_draws_and_report_their_spread(tmp_path):
    rng = np.random.default_rng(6)
    trace = write_trace(
        tmp_path / "trace.csv",
        [float(v) for v in 300 + 100 * np.sin(np.arange(240) / 24 * 2 * np.pi) + rng.normal(0, 30, 240)],
    )
    single = [
        json.loads(
            backtest(
                "--trace", trace, "--policy", "forecast-window", "--forecast-error", "0.3", "--seed", seed, "--json"
            ).stdout
        )["savings_pct"]
        for seed in (3, 4, 5)
    ]
    result = json.loads(
        backtest(
            "--trace",
            trace,
            "--policy",
            "forecast-window",
            "--forecast-error",
            "0.3",
            "--seed",
            3,
            "--seeds",
            3,
            "--json",
        ).stdout
    )
    assert result["seeds"] == 3 and "seed 3 .. 5 (3 draws)" in result["forecast"]
    assert result["savings_pct"] == pytest.approx(np.mean(single), abs=1e-12)
    assert result["savings_pct_sd"] == pytest.approx(np.std(single, ddof=1), abs=1e-12) and result["savings_pct_sd"] > 0
    assert (result["savings_pct_min"], result["savings_pct_max"]) == (
        pytest.approx(min(single)),
        pytest.approx(max(single)),
    )
    refused = backtest("--trace", trace, "--seeds", 0)
    assert refused.exit_code == 2 and "--seeds: must be at least 1" in refused.stderr


@pytest.mark.parametrize("seed", range(24))
def test_the_interruptible_choice_matches_the_pipeline_planner(seed):
    """The backtest's chunk choice (vectorised) and planner.interruptible_plan agree: same cost, and on these random
    (tie-free) values the same chunks. On equal beliefs either may pick another plan of the same cost: the
    backtest takes the earliest points (no minimum chunk) or the plan that skips later points (chunks)."""
    rng = np.random.default_rng(seed)
    span = int(rng.integers(2, 30))
    run = int(rng.integers(1, span + 1))
    min_chunk = int(rng.integers(1, run + 1))
    believed = rng.uniform(50, 400, span)
    mask = cheapest_points(believed[None, :], np.array([run]), np.array([span - run]), np.array([True]), min_chunk)[0]
    start = 1_700_000_000.0
    series = IntensitySeries(start + 3600.0 * np.arange(span + 1), believed, np.zeros(span, dtype=bool), "test", "XX")
    # the planner may gain a minimum saving before it interrupts a job; at 0 it returns the pure optimum compared here
    pure = (
        {"min_saving_pct": 0.0} if "min_saving_pct" in inspect.signature(planner.interruptible_plan).parameters else {}
    )
    for planner_chunk in {min_chunk * 3600.0, 0.0 if min_chunk == 1 else min_chunk * 3600.0}:
        plan = planner.interruptible_plan(series, start, start + span * 3600.0, run * 3600.0, planner_chunk, **pure)
        assert believed[mask].sum() == pytest.approx(plan.expected_mean_intensity * run, rel=1e-9)
        hours = {
            int((chunk.start - start) // 3600) + k for chunk in plan.chunks for k in range(round(chunk.duration / 3600))
        }
        assert hours == set(np.flatnonzero(mask))


def test_lets_wait_awhile_nightly_window_is_scored_against_its_nominal_time(tmp_path):
    path = CARBON_DATA / "lets-wait-awhile" / "ger_ci.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    jobs = tmp_path / "nightly.csv"
    made = CliRunner().invoke(
        app,
        [
            "workload",
            "periodic",
            "-o",
            str(jobs),
            "--from",
            "2020-01-02T00:00Z",
            "--until",
            "2020-12-31T00:00Z",
            "--at",
            "01:00",
            "--window",
            "8h",
            "--duration",
            "30min",
        ],
    )
    assert made.exit_code == 0, made.output
    scores = {
        r["policy"]: r
        for r in json.loads(backtest("--trace", path, "--jobs", jobs, "--policy", "now,oracle", "--json").stdout)
    }
    assert scores["now"]["jobs"] == 364
    # against the window's opening (17:00) the oracle would look 2-5x better; against 01:00 it saves what LWA found
    assert 10 < scores["oracle"]["savings_pct"] < 16 and scores["now"]["savings_pct"] < -10


def test_results_depend_neither_on_blocking_nor_on_the_order_of_the_file(tmp_path, monkeypatch):
    from carbon_pipe.backtest import choices, nowcast, policies

    rng = np.random.default_rng(8)
    trace = write_trace(
        tmp_path / "trace.csv",
        [float(v) for v in 300 + 100 * np.sin(np.arange(24 * 8) / 24 * 2 * np.pi) + rng.normal(0, 30, 24 * 8)],
    )
    rows, _ = random_jobs(rng, 24 * 8, 60)
    results = []
    for name, reverse, cells in (("whole", False, None), ("blocks", True, 64)):
        if cells:  # a few rows, jobs and states at a time
            for module, constant in ((nowcast, "BLOCK_CELLS"), (policies, "JOB_CELLS"), (choices, "DP_CELLS")):
                monkeypatch.setattr(module, constant, cells)
        per_job = tmp_path / f"{name}.csv"
        jobs = write_jobs(tmp_path / f"{name}_jobs.csv", sorted(rows, key=lambda row: row[1], reverse=reverse))
        result = backtest(
            "--trace", trace, "--jobs", jobs, "--min-chunk", "2h", "--threshold", "300", "--per-job", per_job
        )
        assert result.exit_code == 0, result.output
        results.append(sorted(tuple(row.values()) for row in read_per_job(per_job)))
    assert results[0] == results[1]
