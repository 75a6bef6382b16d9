"""The joint plan against an independent brute force over every combination of starts, the single-job planner
when nothing competes, and its rules: never more jobs than workers, every job inside its window, bad input named."""

import itertools

import numpy as np
import pytest

from carbon_pipe.errors import FieldError
from carbon_pipe.intensity.series import IntensitySeries
from carbon_pipe.scheduling import joint_model, planner
from carbon_pipe.scheduling.joint import Hedge, QueuedJob, first_come_plan, own_best_window_plan, plan_jobs

STEP = 1800.0
T0 = 1_700_000_000.0 - 1_700_000_000.0 % STEP


def series_of(rng: np.random.Generator, points: int) -> IntensitySeries:
    values = rng.uniform(50, 400, size=points).round(2)
    return IntensitySeries(T0 + STEP * np.arange(points + 1), values, np.zeros(points, dtype=bool), "test", "XX")


def random_jobs(rng, count: int, window: int, interruptible: int = 0) -> list[QueuedJob]:
    """Jobs on the half-hour grid: arrival in the first `window` steps, 1-3 steps long, 1-5 steps of slack."""
    jobs = []
    for k in range(count):
        arrival = T0 + STEP * int(rng.integers(0, window))
        duration = STEP * int(rng.integers(1, 4))
        slack = STEP * int(rng.integers(1, 6))
        power = float(rng.uniform(0.1, 2.0))
        jobs.append(QueuedJob(f"e{k}", arrival, arrival + duration + slack, duration, power, k < interruptible))
    return jobs


def brute_cost(series: IntensitySeries, start: float, end: float) -> float:
    """Integral of intensity over [start, end) by overlapping it with every point (g/kWh x s)."""
    overlap = np.minimum(end, series.boundaries[1:]) - np.maximum(start, series.boundaries[:-1])
    return float((np.clip(overlap, 0, None) * series.values).sum())


def choices(job: QueuedJob, now: float) -> list[tuple[tuple[float, float], ...]]:
    """Every way to run a job on the grid: one start, or (interruptible) any set of whole steps in its window."""
    earliest = max(job.arrival, now)
    if not job.interruptible:
        starts = np.arange(earliest, job.deadline - job.duration + 1, STEP)
        return [((s, s + job.duration),) for s in starts]
    cells = [(c, c + STEP) for c in np.arange(earliest, job.deadline - STEP + 1, STEP)]
    return list(itertools.combinations(cells, int(job.duration // STEP)))


def brute_force(jobs, series, workers, now) -> float:
    """The least total over every combination of choices whose concurrency never exceeds the workers."""
    options = [choices(job, now) for job in jobs]
    costs = [
        [job.power_kw * sum(brute_cost(series, *span) for span in way) / 3600 for way in ways]
        for job, ways in zip(jobs, options)
    ]
    best = np.inf
    for pick in itertools.product(*(range(len(ways)) for ways in options)):
        total = sum(costs[j][k] for j, k in enumerate(pick))
        if total < best and max_running([options[j][k] for j, k in enumerate(pick)]) <= workers:
            best = total
    return best


def max_running(runs) -> int:
    """Most spans open at one instant (an end and a start at the same moment do not overlap)."""
    events = sorted((t, delta) for spans in runs for start, end in spans for t, delta in ((start, 1), (end, -1)))
    running = most = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        most = max(most, running)
    return most


def assert_valid(plan, jobs, series, workers, now):
    assert max_running([[(c.start, c.end) for c in slot.chunks] for slot in plan.slots]) <= workers
    for job, slot in zip(jobs, plan.slots):
        assert slot.name == job.name
        assert slot.start >= max(job.arrival, now) - 1e-6 and slot.end <= job.deadline + 1e-6
        assert sum(c.duration for c in slot.chunks) == pytest.approx(job.duration)
        assert slot.expected_g == pytest.approx(
            job.power_kw * sum(brute_cost(series, c.start, c.end) for c in slot.chunks) / 3600
        )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_the_joint_total_equals_a_brute_force_over_every_combination_of_starts(seed):
    rng = np.random.default_rng(seed)
    series = series_of(rng, 24)
    count = int(rng.integers(3, 9))
    jobs = random_jobs(rng, count, window=8, interruptible=int(rng.integers(0, 2)))
    workers = int(rng.integers(1, 4))
    now = T0 + STEP * int(rng.integers(0, 2))
    jobs = [job for job in jobs if job.deadline - job.duration >= now]
    try:
        best = brute_force(jobs, series, workers, now)
    except ValueError:
        pytest.skip("no job left")
    if not np.isfinite(best):
        with pytest.raises(FieldError, match="cannot fit it by its deadline"):
            plan_jobs(jobs, series, workers, now, step=STEP)
        return
    plan = plan_jobs(jobs, series, workers, now, step=STEP)
    assert plan.method == "milp" and plan.gap == 0
    assert plan.total_g == pytest.approx(best, rel=1e-7)
    assert_valid(plan, jobs, series, workers, now)


@pytest.mark.parametrize("seed", range(6))
def test_with_a_worker_per_job_each_job_gets_its_single_job_plan(seed):
    rng = np.random.default_rng(100 + seed)
    series = series_of(rng, 96)
    jobs = []
    for k in range(8):
        arrival = T0 + STEP * int(rng.integers(0, 24))
        duration = STEP * int(rng.integers(1, 9))
        jobs.append(
            QueuedJob(f"e{k}", arrival, arrival + duration + STEP * int(rng.integers(0, 40)), duration, 1.0, k % 3 == 0)
        )
    plan = plan_jobs(jobs, series, len(jobs), T0, step=STEP)
    assert_valid(plan, jobs, series, len(jobs), T0)
    for job, slot in zip(jobs, plan.slots):
        if job.interruptible:
            alone = planner.interruptible_plan(series, job.arrival, job.deadline, job.duration)
        else:
            alone = planner.lowest_mean_start(series, job.arrival, job.deadline - job.duration, job.duration)
            assert slot.start == pytest.approx(alone.start)
        assert slot.expected_g == pytest.approx(alone.expected_mean_intensity * job.duration / 3600, rel=1e-7)


def test_a_stampede_is_spread_over_the_trough_and_beats_both_baselines():
    """Twelve experiments submitted together with two workers: the joint plan emits least, the selfish plan is late."""
    rng = np.random.default_rng(7)
    series = series_of(rng, 144)
    jobs = [QueuedJob(f"lr{k}", T0, T0 + 48 * 3600, STEP * int(rng.integers(2, 9)), 0.25) for k in range(12)]
    joint = plan_jobs(jobs, series, 2, T0)
    fcfs, greedy = first_come_plan(jobs, series, 2, T0), own_best_window_plan(jobs, series, 2, T0)
    assert_valid(joint, jobs, series, 2, T0)
    assert max_running([[(c.start, c.end) for c in slot.chunks] for slot in fcfs.slots]) <= 2
    assert joint.total_g < fcfs.total_g and joint.total_g < greedy.total_g and not joint.late
    assert [slot.start for slot in fcfs.slots][:2] == [T0, T0]  # two at once from the start, the rest as they free
    for job, slot in zip(jobs, greedy.slots):
        assert (job.name in greedy.late) == (slot.end > job.deadline + 1e-6)


def test_past_the_exact_size_the_plan_is_a_heuristic_with_its_gap_to_the_bound(monkeypatch):
    rng = np.random.default_rng(3)
    series = series_of(rng, 96)
    jobs = [QueuedJob(f"e{k}", T0, T0 + 24 * 3600, STEP * int(rng.integers(1, 5)), 1.0) for k in range(10)]
    exact = plan_jobs(jobs, series, 2, T0)
    monkeypatch.setattr(joint_model, "MAX_EXACT_VARIABLES", 10)
    rough = plan_jobs(jobs, series, 2, T0)
    assert rough.method == "heuristic" and exact.method == "milp"
    assert rough.lower_bound_g <= exact.total_g * (1 + 1e-9) and exact.total_g <= rough.total_g * (1 + 1e-9)
    assert 0 <= rough.gap <= 0.01
    assert_valid(rough, jobs, series, 2, T0)


@pytest.mark.parametrize(
    "change, workers, match",
    [
        ({"deadline": T0 + STEP}, 1, "job bad: its deadline .* before its arrival plus its duration"),
        ({"duration": 0.0}, 1, "job bad: duration must be positive"),
        ({"power_kw": -1.0}, 1, "job bad: power"),
        ({}, 0, "workers: must be a whole number of at least 1"),
        ({"arrival": T0 + 200 * 3600, "deadline": T0 + 210 * 3600}, 1, "job bad: the intensity series ends"),
    ],
)
def test_a_job_that_cannot_be_planned_is_named(change, workers, match):
    series = series_of(np.random.default_rng(0), 48)
    good = QueuedJob("good", T0, T0 + 6 * 3600, 3600.0, 1.0)
    bad = QueuedJob(**{**vars(QueuedJob("bad", T0, T0 + 6 * 3600, 2 * 3600.0, 1.0)), **change})
    for plan in (plan_jobs, first_come_plan, own_best_window_plan):
        with pytest.raises(FieldError, match=match):
            plan([good, bad], series, workers, T0)


def test_the_job_the_workers_cannot_fit_by_its_deadline_is_named():
    series = series_of(np.random.default_rng(1), 48)
    jobs = [
        QueuedJob("late-due", T0, T0 + 12 * 3600, 3600.0, 1.0),
        QueuedJob("first", T0, T0 + 2 * 3600, 2 * 3600.0, 1.0),
        QueuedJob("second", T0, T0 + 3 * 3600, 2 * 3600.0, 1.0),
    ]
    plan_jobs(jobs, series, 2, T0)  # two workers fit all three
    with pytest.raises(FieldError, match="job second: 1 worker cannot fit it by its deadline"):
        plan_jobs(jobs, series, 1, T0)


def test_a_hedged_job_leaves_its_reference_only_for_a_saving_its_error_band_cannot_undo():
    """A job at 300 g/kWh now, 250 later: with a band of 20 g it moves, with a band of 80 g it stays."""
    values = np.array([300.0] * 4 + [250.0] * 4)
    series = IntensitySeries(T0 + STEP * np.arange(9), values, np.zeros(8, dtype=bool), "test", "XX")
    job = QueuedJob("lr", T0, T0 + 8 * STEP, 2 * STEP, 1.0)
    reference = 300.0 * job.duration / 3600
    for band, moves in ((20.0, True), (80.0, False)):
        pessimistic = IntensitySeries(series.boundaries, values + band, series.is_forecast, "test", "XX")
        plan = plan_jobs([job], series, 1, T0, step=STEP, hedges=[Hedge(T0, reference, 10.0)], pessimistic=pessimistic)
        assert (plan.slots[0].start >= T0 + 4 * STEP) == moves and (plan.slots[0].start == T0) != moves
        assert plan.total_g == pytest.approx((250.0 if moves else 300.0) * job.duration / 3600)
        assert plan.method == "milp" and plan.gap == 0
    assert plan_jobs([job], series, 1, T0, step=STEP).slots[0].start >= T0 + 4 * STEP


def test_a_hedge_never_costs_a_deadline_or_a_worker():
    """Every job hedged to start at once with an error band nothing clears: two workers still serve all six in
    time, the jobs whose reference a worker holds going where they cost least."""
    rng = np.random.default_rng(11)
    series = series_of(rng, 48)
    jobs = [QueuedJob(f"e{k}", T0, T0 + 12 * STEP, 2 * STEP, 1.0) for k in range(6)]
    hedges = [Hedge(T0, 0.0, 10.0) for _ in jobs]
    pessimistic = IntensitySeries(series.boundaries, series.values + 1000, series.is_forecast, "test", "XX")
    plan = plan_jobs(jobs, series, 2, T0, step=STEP, hedges=hedges, pessimistic=pessimistic)
    assert_valid(plan, jobs, series, 2, T0)
    assert sum(slot.start == T0 for slot in plan.slots) == 2


def chunks_of(cells) -> list[tuple[float, float]]:
    """Adjacent cells merged into chunks."""
    merged: list[list[float]] = []
    for start, end in sorted(cells):
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


@pytest.mark.parametrize("seed", range(6))
def test_with_a_chunk_floor_the_joint_total_equals_a_brute_force_over_every_split(seed):
    """Two whole jobs and an interruptible one whose every chunk is at least `floor` steps, on one or two workers."""
    rng = np.random.default_rng(300 + seed)
    series = series_of(rng, 12)
    floor, workers = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    split = QueuedJob("split", T0, T0 + 12 * STEP, 5 * STEP, 1.0, True, floor * STEP)
    jobs = [QueuedJob("a", T0, T0 + 8 * STEP, 2 * STEP, 1.5),
            QueuedJob("b", T0 + 2 * STEP, T0 + 12 * STEP, 3 * STEP, 0.7), split]  # fmt: skip
    options = [choices(job, T0) for job in jobs[:2]]
    options.append([way for way in choices(split, T0) if min(e - s for s, e in chunks_of(way)) >= floor * STEP])
    best = np.inf
    for pick in itertools.product(*options):
        if max_running(pick) <= workers:
            best = min(best, sum(job.power_kw * sum(brute_cost(series, *span) for span in way) / 3600
                                 for job, way in zip(jobs, pick)))  # fmt: skip
    plan = plan_jobs(jobs, series, workers, T0, step=STEP)
    assert plan.method == "milp" and plan.total_g == pytest.approx(best, rel=1e-7)
    assert_valid(plan, jobs, series, workers, T0)
    assert min(chunk.duration for chunk in plan.slots[2].chunks) >= floor * STEP - 1e-6
    assert sum(chunk.duration for chunk in plan.slots[2].chunks) == pytest.approx(5 * STEP)


@pytest.mark.parametrize("seed", range(4))
def test_with_a_worker_each_a_floored_interruptible_job_gets_its_single_job_chunks(seed):
    rng = np.random.default_rng(400 + seed)
    series = series_of(rng, 48)
    jobs = [QueuedJob(f"e{k}", T0 + STEP * k, T0 + STEP * (30 + k), STEP * (4 + k), 1.0, True, STEP * (1 + k))
            for k in range(3)]  # fmt: skip
    plan = plan_jobs(jobs, series, len(jobs), T0, step=STEP)
    for job, slot in zip(jobs, plan.slots):
        alone = planner.interruptible_plan(series, job.arrival, job.deadline, job.duration, job.min_chunk)
        assert slot.expected_g == pytest.approx(alone.expected_mean_intensity * job.duration / 3600, rel=1e-7)
        assert min(chunk.duration for chunk in slot.chunks) >= job.min_chunk - 1e-6


def test_chunks_cut_to_the_duration_keep_the_floor_unless_every_chunk_is_at_it():
    """Whole cells overshoot the duration: cuts come off the last chunks down to the floor; where every chunk is at
    the floor, the last one ends short."""
    assert joint_model._trim([(0.0, 1.0), (3.0, 4.0), (5.0, 6.0)], 2.5, 1.0) == [(0.0, 1.0), (3.0, 4.0), (5.0, 5.5)]
    assert joint_model._trim([(0.0, 2.0), (5.0, 6.0)], 2.5, 1.0) == [(0.0, 1.5), (5.0, 6.0)]
