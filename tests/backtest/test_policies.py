"""Backtests against plain-Python brute force, the information rule, and the command's errors."""

import bisect
import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe import backtest as bt
from carbon_pipe.backtest.choices import cheapest_points
from carbon_pipe.backtest.forecasts import IssuedForecasts, SyntheticForecasts, beliefs
from carbon_pipe.backtest.grid import Grid, to_grid
from carbon_pipe.backtest.jobs import Jobs, periodic
from carbon_pipe.backtest.policies import Knowledge, outcomes
from carbon_pipe.backtest.scoring import evaluate
from carbon_pipe.cli import app
from carbon_pipe.errors import UsageError
from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.intensity.traces import ForecastVintages, load_trace

from ..conftest import CARBON_DATA

QUARTER = 900.0


def random_series(rng: np.random.Generator, points: int = 400) -> IntensitySeries:
    """Irregular intervals (15 min to 2 h, like a scraped feed with gaps) over a daily cycle plus noise."""
    lengths = rng.choice([900.0, 1800.0, 3600.0, 7200.0], size=points, p=[0.3, 0.3, 0.3, 0.1])
    boundaries = np.concatenate([[1_700_000_000.0], 1_700_000_000.0 + np.cumsum(lengths)])
    hours = (boundaries[:-1] - boundaries[0]) / 3600
    values = np.clip(300 + 120 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 40, points), 0, None).round(1)
    return IntensitySeries(boundaries, values, np.zeros(points, dtype=bool), "test", "XX")


def brute_force_oracle_pct(series: IntensitySeries, duration: float, slack: float, every: float) -> float:
    """Plain loops: every job, every start on the trace's own time step, the integral walked point by point."""
    times = [int(b) for b in series.boundaries]
    step = 0
    for before, after in zip(times, times[1:]):
        step = math.gcd(step, after - before)

    def emissions(start: float) -> float:
        total, i = 0.0, bisect.bisect_right(times, start) - 1
        while i < len(series.values) and times[i] < start + duration:
            total += (min(start + duration, times[i + 1]) - max(start, times[i])) * series.values[i]
            i += 1
        return total

    at_arrival = best = 0.0
    arrival = times[0]
    while arrival + slack + duration <= times[-1]:
        at_arrival += emissions(arrival)
        best += min(emissions(arrival + k * step) for k in range(int(slack // step) + 1))
        arrival += every
    return 100 * (1 - best / at_arrival)


def synthetic(series, duration, slack, every, error=0.0, seed=0):
    grid = to_grid(series)
    return grid, periodic(grid, duration, slack, every), SyntheticForecasts(grid, error, seed)


def score(policies, grid, jobs, forecasts, threshold=None, min_chunk=1):
    return evaluate(policies, grid, jobs, [forecasts], threshold, min_chunk).scores


def expected(grid, forecasts, horizon):
    """What the nowcast expects at every row, stacked from its blocks."""
    blocks = Knowledge(grid, forecasts, horizon).nowcast().blocks(np.arange(len(grid)))
    return np.vstack([values for _, values in blocks])


def start_offsets(policy, jobs, knowledge, threshold=None):
    return outcomes([policy], jobs, knowledge, threshold, 1)[policy].first_start() - jobs.arrival


@pytest.mark.parametrize("seed", range(6))
def test_oracle_matches_brute_force_on_random_traces(seed):
    rng = np.random.default_rng(seed)
    series = random_series(rng, points=int(rng.integers(60, 120)))
    duration = QUARTER * int(rng.integers(1, 16))
    slack = QUARTER * int(rng.integers(0, 40))
    every = QUARTER * int(rng.integers(1, 8))
    grid, jobs, forecasts = synthetic(series, duration, slack, every)
    oracle = score(["oracle"], grid, jobs, forecasts)[0]
    assert oracle.savings_pct == pytest.approx(brute_force_oracle_pct(series, duration, slack, every), abs=0.1)


@pytest.mark.parametrize(
    "relative, preset, hours",
    [
        ("electricitymaps-api-scrape/DE.csv", "electricitymaps-scrape", 24 * 40),  # hourly with gaps up to 6 h
        ("lets-wait-awhile/gb_ci.csv", "lets-wait-awhile", 24 * 10),  # 30 min with 15-min stretches
        ("uk-carbon-intensity-forecasts/gb_national_actuals_2023-03-14_2023-03-19.csv", "uk-actuals", 24 * 5),
    ],
)
def test_oracle_matches_brute_force_on_real_traces(relative, preset, hours):
    path = CARBON_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    full = load_trace(path, preset, max_gap=math.inf)  # the backtest holds the last reading across holes
    keep = int(np.searchsorted(full.boundaries, full.start + hours * 3600))
    series = IntensitySeries(full.boundaries[: keep + 1], full.values[:keep], full.is_forecast[:keep], "csv", "real")
    grid, jobs, forecasts = synthetic(series, 4 * 3600, 24 * 3600, 3 * 3600)
    oracle = score(["oracle"], grid, jobs, forecasts)[0]
    assert oracle.savings_pct > 5  # a real grid leaves something to save: the comparison is not 0 == 0
    assert oracle.savings_pct == pytest.approx(brute_force_oracle_pct(series, 4 * 3600, 24 * 3600, 3 * 3600), abs=0.1)


def test_perfect_forecasts_reach_the_oracle_and_interrupting_never_loses():
    series = random_series(np.random.default_rng(7), points=600)
    grid, jobs, forecasts = synthetic(series, 3 * 3600, 20 * 3600, 3600, error=0.0)
    scores = {s.policy: s for s in score(list(bt.POLICIES[2:]), grid, jobs, forecasts, min_chunk=4)}
    oracle = scores["oracle"].savings_pct
    assert oracle > 10
    assert scores["forecast-window"].savings_pct == pytest.approx(oracle, abs=1e-9)
    assert scores["rolling"].savings_pct == pytest.approx(oracle, abs=1e-9)
    assert scores["interruptible"].savings_pct == pytest.approx(scores["oracle-interruptible"].savings_pct, abs=1e-9)
    assert scores["forecast-chunks"].savings_pct == pytest.approx(scores["oracle-interruptible"].savings_pct, abs=1e-9)
    assert scores["interruptible"].savings_pct >= scores["forecast-window"].savings_pct - 1e-9
    assert scores["oracle-interruptible"].savings_pct > oracle  # chunks of 1 h can dodge what a 3 h block cannot


def grid_like(rng: np.random.Generator, days: int = 120) -> IntensitySeries:
    """Hourly: a daily cycle, a slow weather-like wander (AR(1), 0.97 per hour) and a little fast noise."""
    hours = np.arange(24 * days)
    wander = np.zeros(len(hours))
    for h in hours[1:]:
        wander[h] = 0.97 * wander[h - 1] + rng.normal(0, 15)
    values = np.clip(300 + 80 * np.sin(2 * np.pi * hours / 24) + wander + rng.normal(0, 10, len(hours)), 0, None)
    boundaries = 1_700_000_000.0 + 3600.0 * np.arange(len(hours) + 1)
    return IntensitySeries(boundaries, values, np.zeros(len(hours), dtype=bool), "test", "XX")


def test_noisy_forecasts_fall_short_of_the_oracle_and_smoothing_helps():
    grid, jobs, forecasts = synthetic(grid_like(np.random.default_rng(3)), 4 * 3600, 24 * 3600, 3600, error=0.2, seed=1)
    scores = {
        s.policy: s for s in score(["forecast-window", "rolling", "interruptible", "oracle"], grid, jobs, forecasts)
    }
    assert scores["forecast-window"].fraction_of_oracle < 0.99
    assert scores["rolling"].savings_pct > scores["forecast-window"].savings_pct
    assert scores["interruptible"].savings_pct > scores["forecast-window"].savings_pct


@pytest.mark.parametrize("seed", range(16))
def test_interruption_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    span = int(rng.integers(3, 11))
    run = int(rng.integers(1, span + 1))
    min_chunk = int(rng.integers(1, run + 1))
    actual = rng.uniform(0, 10, size=span)
    believed = actual + rng.normal(0, 3, size=span)  # plans on a belief, pays the actual
    best_expected, best_cost = math.inf, None
    for chosen in itertools.combinations(range(span), run):
        starts = [i for i, slot in enumerate(chosen) if i == 0 or slot != chosen[i - 1] + 1] + [run]
        if min(b - a for a, b in zip(starts, starts[1:])) < min_chunk:
            continue
        if believed[list(chosen)].sum() < best_expected:
            best_expected, best_cost = believed[list(chosen)].sum(), actual[list(chosen)].sum()
    mask = cheapest_points(believed[None, :], np.array([run]), np.array([span - run]), np.array([True]), min_chunk)
    assert actual[mask[0]].sum() == pytest.approx(best_cost)


@pytest.mark.slow
def test_decisions_use_only_what_was_known_then():
    """Change every actual from point `cut` on: nothing a policy decided before then may change."""
    series = random_series(np.random.default_rng(11), points=2500)
    grid = to_grid(series)
    jobs = periodic(grid, 2 * 3600, 12 * 3600, 3600)
    forecasts = SyntheticForecasts(grid, 0.1, 5)  # issued before the change: the same forecasts in both worlds
    cut = len(grid.values) // 2
    changed = grid.values.copy()
    changed[cut:] = changed[cut:][::-1] * 1.7
    other = Grid(grid.start, grid.step, changed)
    before, after = expected(grid, forecasts, 14 * 8), expected(other, forecasts, 14 * 8)
    np.testing.assert_array_equal(before[: cut + 1], after[: cut + 1])
    assert not np.array_equal(before[cut + 1 :], after[cut + 1 :])  # it does learn, later
    for policy in ("forecast-window", "rolling", "threshold", "interruptible"):
        first = start_offsets(policy, jobs, Knowledge(grid, forecasts, 14 * 8), threshold=300)
        second = start_offsets(policy, jobs, Knowledge(other, forecasts, 14 * 8), threshold=300)
        decided = jobs.arrival + first <= cut
        assert decided.sum() > 100
        np.testing.assert_array_equal(first[decided], second[decided])


def test_synthetic_forecasts_are_seeded_and_reissues_agree_on_the_future():
    grid = to_grid(random_series(np.random.default_rng(2), points=2000))
    one, again, other = (SyntheticForecasts(grid, 0.1, seed) for seed in (4, 4, 5))
    rows = np.array([100, 103])
    np.testing.assert_array_equal(one.forecast(rows, 10), again.forecast(rows, 10))
    assert not np.array_equal(one.forecast(rows, 10), other.forecast(rows, 10))
    first, later = one.forecast(rows, 10)
    np.testing.assert_array_equal(first[3:], later[:7])  # the same draw for the same point, whenever issued
    noise = one.noisy[:-1] - grid.values
    assert noise.std() == pytest.approx(0.1 * grid.values.mean(), rel=0.1)


def test_issued_forecasts_are_used_only_from_their_issue_time():
    hour = 3600.0
    grid = Grid(0.0, hour, np.full(12, 100.0))
    # issued 00:30 for 01:00..04:00; issued 02:00 for 02:00..05:00
    vintages = ForecastVintages(
        issued=np.array([1800.0] * 4 + [7200.0] * 4),
        target=np.array([1, 2, 3, 4, 2, 3, 4, 5]) * hour,
        values=np.array([10.0, 11, 12, 13, 20, 21, 22, 23]),
        origin="test",
    )
    known = beliefs(grid, IssuedForecasts(grid, vintages), np.arange(4), 3)
    assert np.isnan(known[0]).all()  # nothing issued at 00:00
    np.testing.assert_array_equal(known[1], [10, 11, 12])
    np.testing.assert_array_equal(known[2], [20, 21, 22])  # the 02:00 issue is known at 02:00
    np.testing.assert_array_equal(known[3], [21, 22, 23])


def test_a_forecast_starting_after_now_is_bridged_with_the_last_actual():
    grid = Grid(0.0, 300.0, np.arange(10.0))
    vintages = ForecastVintages(np.array([1500.0, 1500.0]), np.array([1800.0, 2100.0]), np.array([50.0, 60.0]), "test")
    known = beliefs(grid, IssuedForecasts(grid, vintages), np.array([5]), 4)
    np.testing.assert_array_equal(known[0, :3], [4, 50, 60])  # 4 = the actual of the point that just ended
    assert np.isnan(known[0, 3])


def test_threshold_starts_at_the_first_point_under_it_or_at_the_deadline():
    grid = Grid(0.0, 3600.0, np.array([400.0, 400, 250, 400, 400, 400, 400, 400, 400, 400]))
    jobs = Jobs.uniform(np.array([0, 3]), duration=1, slack=3)
    knowledge = Knowledge(grid, SyntheticForecasts(grid, 0.0, 0), 4)
    np.testing.assert_array_equal(start_offsets("threshold", jobs, knowledge, threshold=300), [2, 3])


def test_jobs_fill_the_trace_and_bad_lengths_are_named():
    grid = Grid(0.0, 1800.0, np.ones(48))
    jobs = periodic(grid, 4 * 3600, 12 * 3600, 3600)
    assert jobs.arrival[0] == 0 and jobs.arrival[-1] + jobs.slack[-1] + jobs.duration[-1] <= 48
    assert jobs.arrival[-1] + 2 + jobs.slack[-1] + jobs.duration[-1] > 48  # the next arrival would not fit
    with pytest.raises(
        UsageError, match="^duration: 45min is not a multiple of the trace step 30min"
    ):  # the concept, not a flag
        periodic(grid, 2700, 0, 3600)
    with pytest.raises(UsageError, match="trace too short"):
        periodic(grid, 4 * 3600, 21 * 3600, 3600)


def test_every_result_carries_its_setup():
    series = random_series(np.random.default_rng(5), points=500)
    setup = bt.Setup(duration=3600.0, slack=6 * 3600.0, every=3600.0, policies=("now", "oracle"))
    results = bt.run(series, setup).as_dicts()
    assert [r["policy"] for r in results] == ["now", "oracle"]
    for key in ("jobs", "savings_pct", "oracle_savings_pct", "fraction_of_oracle", "forecast", "slack_hours"):
        assert key in results[0]
    assert results[0]["savings_pct"] == 0 and results[1]["fraction_of_oracle"] == 1
    assert "0.1 x mean" in results[0]["forecast"]  # the default synthetic error is stated


def cli(*args):
    return CliRunner().invoke(app, ["backtest", *args])


@pytest.fixture
def trace_csv(tmp_path):
    rows = ["timestamp,carbon_intensity"] + [
        f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,"
        f"{300 + 100 * math.sin(h / 24 * 2 * math.pi) + (h * 37) % 23:.1f}"
        for h in range(24 * 6)
    ]
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_command_prints_json_for_one_or_several_policies(trace_csv):
    one = cli("--trace", str(trace_csv), "--policy", "oracle", "--json")
    assert one.exit_code == 0, one.stderr
    result = json.loads(one.stdout)
    assert result["policy"] == "oracle" and result["jobs"] == 24 * 6 - 24 - 4 + 1
    several = cli(
        "--trace", str(trace_csv), "--policy", "now,rolling", "--policy", "oracle", "--json", "--forecast-error", "0"
    )
    results = json.loads(several.stdout)
    assert [r["policy"] for r in results] == ["now", "rolling", "oracle"]
    assert results[1]["savings_pct"] == pytest.approx(results[2]["savings_pct"])
    table = cli("--trace", str(trace_csv), "--threshold", "300")
    assert table.exit_code == 0 and "threshold" in table.stdout and "oracle-interruptible" in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "fastest"], "--policy: unknown policy 'fastest'"),
        (["--duration", "4 hours"], "--duration: invalid duration '4 hours'"),
        (["--every", "45min"], "--every: 45min is not a multiple of the trace step 1h"),
        (["--slack", "7d"], "trace too short"),
        (["--policy", "threshold"], "--threshold: the threshold policy needs a threshold"),
        (["--from", "2024-01-02"], "--from: time 2024-01-02 has no time zone"),
    ],
)
def test_command_errors_are_one_line_with_exit_2(trace_csv, args, message):
    result = cli("--trace", str(trace_csv), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_command_reads_real_forecast_vintages():
    folder = CARBON_DATA / "uk-carbon-intensity-forecasts"
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    result = cli(
        "--trace", str(folder / "gb_national_actuals_2023-03-14_2023-03-19.csv"),
        "--forecasts", str(folder / "gb_national_forecast_vintages_2023-03-14_2023-03-18.csv"),
        "--policy", "forecast-window,rolling,oracle", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    scores = {r["policy"]: r for r in json.loads(result.stdout)}
    assert "33 issues" in scores["rolling"]["forecast"]
    assert scores["oracle"]["savings_pct"] > 25
    assert scores["forecast-window"]["fraction_of_oracle"] < scores["rolling"]["fraction_of_oracle"] < 1
