"""The planner against brute force, on random series with irregular interval lengths."""

import numpy as np
import pytest

from carbon_pipe import planner
from carbon_pipe.series import IntensityPoint, IntensitySeries


def random_series(rng: np.random.Generator, points: int = 30) -> IntensitySeries:
    lengths = rng.choice([300.0, 900.0, 1800.0, 3600.0, 5400.0], size=points)
    boundaries = np.concatenate([[1_700_000_000.0], 1_700_000_000.0 + np.cumsum(lengths)])
    values = rng.uniform(0, 500, size=points).round(1)
    return IntensitySeries(boundaries, values, np.zeros(points, dtype=bool), "test", "XX")


def brute_means(series: IntensitySeries, starts: np.ndarray, duration: float) -> np.ndarray:
    """Exact means by overlapping every window with every point: independent of the cumulative-integral code."""
    starts = np.asarray(starts, dtype=float)[:, None]
    overlap = np.minimum(starts + duration, series.boundaries[1:]) - np.maximum(starts, series.boundaries[:-1])
    return (np.clip(overlap, 0, None) * series.values).sum(axis=1) / duration


@pytest.mark.parametrize("seed", range(20))
def test_lowest_mean_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    series = random_series(rng)
    earliest = series.start + float(rng.uniform(0, 3600))
    duration = float(rng.choice([600.0, 2700.0, 7200.0]))
    latest = earliest + float(rng.uniform(3600, 20 * 3600))
    plan = planner.lowest_mean_start(series, earliest, latest, duration)
    # Brute force: every start on a one-second grid, plus the window's end.
    latest_ok = min(latest, series.end - duration)
    grid = np.append(np.arange(earliest, latest_ok, 1.0), latest_ok)
    brute = brute_means(series, grid, duration)
    assert earliest <= plan.start <= latest_ok
    assert plan.expected_mean_intensity <= brute.min() + 1e-9
    assert plan.expected_mean_intensity == pytest.approx(brute_means(series, [plan.start], duration)[0], abs=1e-9)
    # Starts are real numbers, the grid is whole seconds: the optimum can beat the grid only by a hair.
    assert brute.min() - plan.expected_mean_intensity < 500 * 2 / duration
    assert plan.expected_mean_intensity <= plan.now_mean_intensity


def test_lowest_mean_handles_partial_intervals_exactly():
    # 1 h of 100, then 1 h of 0, then 100: a 30-min job belongs fully inside the zero hour.
    series = IntensitySeries(np.array([0.0, 3600, 7200, 10800]), np.array([100.0, 0.0, 100.0]), np.zeros(3, bool), "t", "x")
    plan = planner.lowest_mean_start(series, 600.0, 9000.0, 1800.0)
    assert plan.start == 3600.0 and plan.expected_mean_intensity == 0.0
    assert plan.now_mean_intensity == 100.0 and plan.saving_vs_now_pct == 100.0
    # A 90-min job cannot avoid 30 min of the 100 points: mean 100/3.
    wide = planner.lowest_mean_start(series, 0.0, 9000.0, 5400.0)
    assert wide.expected_mean_intensity == pytest.approx(100 / 3)


def test_threshold_never_overshoots_max_wait():
    series = IntensitySeries(np.arange(0.0, 48 * 3600 + 1, 3600), np.full(48, 400.0), np.zeros(48, bool), "t", "x")
    plan = planner.threshold_start(series, 1000.0, 1000.0 + 5 * 3600, 600.0, threshold=300)
    assert plan.start == 1000.0 + 5 * 3600
    assert "maximum wait" in plan.reason


def test_threshold_starts_at_first_clean_point_or_now():
    values = np.array([400.0, 350, 290, 100, 500])
    series = IntensitySeries(np.arange(0.0, 6 * 3600, 3600), values, np.zeros(5, bool), "t", "x")
    assert planner.threshold_start(series, 1800.0, 4 * 3600, 600.0, threshold=300).start == 2 * 3600
    assert planner.threshold_start(series, 1800.0, 4 * 3600, 600.0, threshold=400).start == 1800.0
    # The first clean point lies beyond the allowed delay: start at the deadline, not later.
    assert planner.threshold_start(series, 0.0, 5000.0, 600.0, threshold=150).start == 5000.0


def test_series_validation_and_contiguity():
    with pytest.raises(ValueError, match="not contiguous"):
        IntensitySeries.from_points([IntensityPoint(0, 10, 1, False), IntensityPoint(20, 30, 1, False)], "t", "x")
    with pytest.raises(ValueError, match="non-negative"):
        IntensitySeries(np.array([0.0, 1.0]), np.array([np.nan]), np.zeros(1, bool), "t", "x")
    series = IntensitySeries.from_points([IntensityPoint(0, 10, 5, False), IntensityPoint(10, 30, 20, True)], "t", "x")
    assert series.mean(5, 20) == pytest.approx((5 * 5 + 10 * 20) / 15)
    assert IntensitySeries.from_frame(series.to_frame(), "t", "x").values.tolist() == [5, 20]
    with pytest.raises(ValueError, match="does not cover"):
        planner.lowest_mean_start(series, 25, 100, 10)
