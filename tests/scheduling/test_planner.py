"""The planner against brute force, on random series with irregular interval lengths."""

import itertools

import numpy as np
import pytest

from carbon_pipe.intensity.series import IntensityPoint, IntensitySeries
from carbon_pipe.intensity.traces import LBS_PER_MWH_TO_G_PER_KWH
from carbon_pipe.scheduling import planner

LEVELS = np.array([123.456, 270.3 * LBS_PER_MWH_TO_G_PER_KWH, 1 / 3, 0.1 + 0.2])  # not exactly representable


def random_series(rng: np.random.Generator, points: int = 30, values: str = "uniform") -> IntensitySeries:
    """`values`: uniform (distinct), levels (a few repeated values) or plateaus (runs of one value)."""
    lengths = rng.choice([300.0, 900.0, 1800.0, 3600.0, 5400.0], size=points)
    boundaries = np.concatenate([[1_700_000_000.0], 1_700_000_000.0 + np.cumsum(lengths)])
    if values == "uniform":
        drawn = rng.uniform(0, 500, size=points).round(1)
    elif values == "levels":
        drawn = rng.choice(LEVELS, size=points)
    else:
        pool = np.concatenate([LEVELS, rng.uniform(0, 500, size=4).round(1)])
        drawn = np.repeat(rng.choice(pool, size=points), rng.integers(1, 8, size=points))[:points]
    return IntensitySeries(boundaries, drawn, np.zeros(points, dtype=bool), "test", "XX")


def brute_means(series: IntensitySeries, starts: np.ndarray, duration: float) -> np.ndarray:
    """Exact means by overlapping every window with every point: independent of the cumulative-integral code."""
    starts = np.asarray(starts, dtype=float)[:, None]
    overlap = np.minimum(starts + duration, series.boundaries[1:]) - np.maximum(starts, series.boundaries[:-1])
    return (np.clip(overlap, 0, None) * series.values).sum(axis=1) / duration


def earliest_least(costs: np.ndarray) -> int:
    """The brute force's tie rule: the first cost within 1e-9 (relative) of the least."""
    return int(np.flatnonzero(costs <= costs.min() * (1 + 1e-9) + 1e-12)[0])


@pytest.mark.parametrize("values", ["uniform", "levels", "plateaus"])
@pytest.mark.parametrize("seed", range(20))
def test_lowest_mean_matches_brute_force(seed, values):
    rng = np.random.default_rng(seed)
    series = random_series(rng, values=values)
    earliest = series.start + float(rng.uniform(0, 3600))
    duration = float(rng.choice([600.0, 2700.0, 7200.0]))
    latest = earliest + float(rng.uniform(3600, 20 * 3600))
    plan = planner.lowest_mean_start(series, earliest, latest, duration)
    # Brute force: every whole second, which holds every kink (boundaries and durations are whole seconds), and
    # both ends of the window. The optimum, and the earliest start that reaches it, are among these.
    latest_ok = min(latest, series.end - duration)
    grid = np.unique(np.concatenate([[earliest, latest_ok], np.arange(np.ceil(earliest), latest_ok, 1.0)]))
    brute = brute_means(series, grid, duration)
    assert plan.expected_mean_intensity == pytest.approx(brute.min(), rel=1e-9)
    assert plan.start == pytest.approx(grid[earliest_least(brute)], abs=1e-6)
    assert plan.expected_mean_intensity == pytest.approx(brute_means(series, [plan.start], duration)[0], rel=1e-9)
    assert plan.expected_mean_intensity <= plan.now_mean_intensity


def test_lowest_mean_handles_partial_intervals_exactly():
    # 1 h of 100, then 1 h of 0, then 100: a 30-min job belongs fully inside the zero hour.
    series = IntensitySeries(
        np.array([0.0, 3600, 7200, 10800]), np.array([100.0, 0.0, 100.0]), np.zeros(3, bool), "t", "x"
    )
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


# -- interruptible plans ---------------------------------------------------------------------------------------


def chunk_integral(series: IntensitySeries, chunks) -> float:
    """Independent of the planner: overlap every chunk with every point."""
    return sum(
        brute_means(series, [chunk.start], chunk.end - chunk.start)[0] * (chunk.end - chunk.start) for chunk in chunks
    )


def exhaustive_cells(
    series: IntensitySeries, earliest: float, deadline: float, duration: float, min_chunk: float, cell: float
) -> tuple[float, float]:
    """The least integral over every set of whole `cell`s whose runs are all >= min_chunk (all the subsets), and
    the earliest finish among the sets that reach it (within 1e-9, relative)."""
    count, need = int((deadline - earliest) // cell), int(round(duration / cell))
    least = max(1, int(np.ceil(min_chunk / cell - 1e-9)))
    costs = brute_means(series, earliest + cell * np.arange(count), cell) * cell
    found = []  # (integral, index of the last cell)
    for chosen in itertools.combinations(range(count), need):
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-2], chosen, [count + 2]])) != 1))
        if runs.min() >= least:
            found.append((costs[list(chosen)].sum(), chosen[-1]))
    if not found:  # no set of whole cells obeys the minimum chunk
        return np.inf, np.nan
    best = min(cost for cost, _ in found)
    last = min(end for cost, end in found if cost <= best * (1 + 1e-9))
    return best, earliest + cell * (last + 1)


def assert_valid(plan, earliest, deadline, duration, min_chunk):
    assert plan.mode == "interruptible" and plan.duration == pytest.approx(duration)
    assert earliest - 1e-6 <= plan.start and plan.end <= deadline + 1e-6
    assert all(c.duration >= min(min_chunk, duration) - 1e-6 for c in plan.chunks)
    assert all(a.end < b.start for a, b in zip(plan.chunks, plan.chunks[1:]))  # ordered; touching runs are merged


@pytest.mark.parametrize("seed", range(40))
def test_interruptible_matches_exhaustive_search(seed):
    rng = np.random.default_rng(100 + seed)
    points = 7
    lengths = rng.choice([600.0, 1200.0, 1800.0, 3000.0], size=points)  # irregular, on a 10-min grid
    boundaries = np.concatenate([[0.0], np.cumsum(lengths)])
    values = rng.integers(0, 8, size=points) * 123.456 / 2  # few levels, not exactly representable: ties happen
    series = IntensitySeries(boundaries, values, np.zeros(points, bool), "t", "x")
    earliest = 600.0 * rng.integers(0, 3)
    deadline = min(series.end, earliest + 600.0 * rng.integers(6, 15))
    duration = 600.0 * rng.integers(1, 6)
    min_chunk = 600.0 * rng.integers(0, 4)
    if deadline - earliest < duration:
        pytest.skip("no room for the job")
    plan = planner.interruptible_plan(series, earliest, deadline, duration, min_chunk)
    assert_valid(plan, earliest, deadline, duration, min_chunk)
    integral = plan.expected_mean_intensity * duration
    assert integral == pytest.approx(chunk_integral(series, plan.chunks), abs=1e-6)
    flexible = planner.lowest_mean_start(series, earliest, deadline - duration, duration)
    best, first_finish = exhaustive_cells(series, earliest, deadline, duration, min_chunk, 600.0)
    if min_chunk >= duration:
        best = flexible.expected_mean_intensity * duration  # one chunk anywhere, not only on the grid
    assert integral == pytest.approx(best, abs=1e-6)
    # Among equal plans: one uninterrupted run (the flexible optimum, itself the earliest such start), else the
    # plan that is done first.
    if flexible.expected_mean_intensity * duration <= best * (1 + 1e-9):
        assert plan.chunks == flexible.chunks
    else:
        assert plan.end == first_finish
    # A finer grid finds nothing better: the optimum really has its edges on the coarse one.
    if duration <= 1800 and deadline - earliest <= 4800:
        assert integral <= exhaustive_cells(series, earliest, deadline, duration, min_chunk, 300.0)[0] + 1e-6


@pytest.mark.parametrize("seed", range(25))
def test_interruptible_le_flexible_le_now_on_unaligned_times(seed):
    rng = np.random.default_rng(seed)
    series = random_series(rng)
    earliest = series.start + float(rng.uniform(0, 3600))  # a wall-clock "now", not on any boundary
    duration = float(rng.uniform(600, 6 * 3600))
    deadline = min(series.end, earliest + duration + float(rng.uniform(0, 20 * 3600)))
    min_chunk = float(rng.choice([0.0, 900.0, 1234.5]))
    plan = planner.interruptible_plan(series, earliest, deadline, duration, min_chunk)
    assert_valid(plan, earliest, deadline, duration, min_chunk)
    assert plan.expected_mean_intensity * duration == pytest.approx(chunk_integral(series, plan.chunks), rel=1e-9)
    flexible = planner.lowest_mean_start(series, earliest, deadline - duration, duration)
    assert plan.expected_mean_intensity <= flexible.expected_mean_intensity
    assert flexible.expected_mean_intensity <= flexible.now_mean_intensity * (1 + 1e-12)
    assert plan.now_mean_intensity == flexible.now_mean_intensity


def test_interruptible_takes_partial_intervals_exactly_and_next_to_its_neighbours():
    # 0-1 h: 100, 1-2 h: 0, 2-3 h: 50, 3-4 h: 10. A 2.5 h job: all of 1-2 h and 3-4 h, then half of 2-3 h.
    series = IntensitySeries(
        np.arange(0.0, 4 * 3600 + 1, 3600), np.array([100.0, 0.0, 50.0, 10.0]), np.zeros(4, bool), "t", "x"
    )
    plan = planner.interruptible_plan(series, 0.0, 4 * 3600, 2.5 * 3600)
    assert [(c.start, c.end) for c in plan.chunks] == [(3600.0, 2.5 * 3600), (3 * 3600.0, 4 * 3600.0)]
    assert plan.expected_mean_intensity == pytest.approx((0 + 0.5 * 50 + 10) / 2.5)
    # A minimum chunk of 2 h forbids two pieces: the best single 2.5 h stretch is 1-3.5 h (0 + 50 + 5).
    single = planner.interruptible_plan(series, 0.0, 4 * 3600, 2.5 * 3600, min_chunk=2 * 3600)
    assert [(c.start, c.end) for c in single.chunks] == [(3600.0, 3.5 * 3600)]
    assert single.expected_mean_intensity == pytest.approx(55 / 2.5)


def test_min_chunk_stops_thrashing():
    values = np.tile([10.0, 500.0], 12)  # clean and dirty half-hours alternate
    series = IntensitySeries(np.arange(0.0, 24 * 1800 + 1, 1800), values, np.zeros(24, bool), "t", "x")
    thrash = planner.interruptible_plan(series, 0.0, series.end, 3 * 3600)
    assert len(thrash.chunks) == 6 and thrash.expected_mean_intensity == 10
    calm = planner.interruptible_plan(series, 0.0, series.end, 3 * 3600, min_chunk=3600)
    assert all(c.duration >= 3600 for c in calm.chunks) and len(calm.chunks) <= 3
    assert thrash.expected_mean_intensity < calm.expected_mean_intensity < 500


def test_interruptible_refuses_a_job_that_does_not_fit():
    series = IntensitySeries(np.array([0.0, 3600.0]), np.array([1.0]), np.zeros(1, bool), "t", "x")
    with pytest.raises(ValueError, match="does not fit"):
        planner.interruptible_plan(series, 0.0, 3600.0, 7200.0)


def test_cheapest_location_compares_expected_emissions():
    flat = IntensitySeries(np.array([0.0, 7200.0]), np.array([100.0]), np.zeros(1, bool), "t", "x")
    clean = IntensitySeries(np.array([0.0, 3600.0, 7200.0]), np.array([300.0, 20.0]), np.zeros(2, bool), "t", "y")
    plans = [planner.lowest_mean_start(s, 0.0, 3600.0, 3600.0) for s in (flat, clean)]
    assert planner.cheapest_location(plans) == 1 and plans[1].start == 3600.0
    assert planner.cheapest_location([plans[0], plans[0]]) == 0  # ties keep the first (the primary place)


@pytest.mark.parametrize("seed", range(10))
def test_a_wall_clock_now_off_the_grid_plans_as_well_as_from_the_next_boundary(seed):
    rng = np.random.default_rng(seed)
    series = random_series(rng, points=40)
    earliest = series.boundaries[1] - 17.3  # a few seconds before a boundary, as a real clock would be
    deadline, duration = series.boundaries[25], 3 * 3600.0
    unaligned = planner.interruptible_plan(series, earliest, deadline, duration, min_chunk=1800)
    aligned = planner.interruptible_plan(series, series.boundaries[1], deadline, duration, min_chunk=1800)
    assert unaligned.expected_mean_intensity <= aligned.expected_mean_intensity
