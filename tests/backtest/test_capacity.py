"""The capacity backtest (`backtest --capacity K`) and sweep workloads: every policy keeps to the workers, the jobs'
durations and arrivals; misses are counted, not hidden; bad input is one line naming its flag."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.backtest import capacity as cap
from carbon_pipe.backtest import workload
from carbon_pipe.backtest.capacity_report import run_capacity
from carbon_pipe.backtest.files import load_jobs
from carbon_pipe.backtest.forecasts import Forecasts
from carbon_pipe.backtest.grid import to_grid
from carbon_pipe.backtest.runner import Setup
from carbon_pipe.cli import app
from carbon_pipe.errors import FieldError
from carbon_pipe.intensity.series import IntensitySeries

START = 1_704_067_200.0  # 2024-01-01T00:00Z
DAY = 86400.0


def daily_series(days: int = 6, seed: int = 0) -> IntensitySeries:
    """Hourly points: a daily cycle (cleanest around 03:00) with noise."""
    hours = np.arange(days * 24)
    values = 300 + 120 * np.cos(2 * np.pi * (hours - 15) / 24) + np.random.default_rng(seed).normal(0, 15, len(hours))
    return IntensitySeries(
        START + 3600.0 * np.arange(len(hours) + 1), values, np.zeros(len(hours), dtype=bool), "t", "XX"
    )


def evening_sweep(days: int = 3, count: int = 5) -> workload.Sweep:
    return workload.Sweep(
        START + DAY, START + (1 + days) * DAY, count, "17:00", (3600.0, 4 * 3600.0), 36 * 3600.0, step=3600.0
    )


def max_running(runs) -> int:
    events = sorted((t, d) for spans in runs for s, e in spans for t, d in ((s, 1), (e, -1)))
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    return most


def test_a_sweep_submits_its_experiments_together_each_day_with_one_deadline():
    table = workload.sweep(evening_sweep(days=3, count=5))
    assert len(table) == 15 and len(set(table.ids)) == 15
    times = {datetime.fromtimestamp(t, timezone.utc).strftime("%d %H:%M") for t in table.arrival}
    assert times == {"02 17:00", "03 17:00", "04 17:00"}
    assert np.all(table.deadline - table.arrival == 36 * 3600)
    assert set(table.duration) <= {3600.0, 7200.0, 10800.0, 14400.0} and len(set(table.duration)) > 1
    with pytest.raises(FieldError, match="deadline"):
        workload.sweep(workload.Sweep(START, START + DAY, 3, "17:00", (3600.0, 4 * 3600.0), 3600.0))
    with pytest.raises(FieldError, match="count"):
        workload.sweep(workload.Sweep(START, START + DAY, 0, "17:00", (3600.0, 3600.0), DAY))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_every_policy_keeps_to_the_workers_and_the_jobs(workers):
    series = daily_series()
    table = workload.sweep(evening_sweep())
    report = run_capacity(series, Setup(forecast_error=0.1, seeds=2), workers, table=table)
    scores = {(s.policy, k): s for k, s in enumerate(report.scores)}
    assert [s.policy for s in report.scores] == ["fcfs", "greedy", "joint", "oracle-capacity", "greedy", "joint"]
    for (policy, draw), runs in report.runs.items():
        assert max_running(runs) <= workers, policy
        for job, spans in zip(report.jobs, runs):
            assert spans[0][0] >= job.arrival and sum(e - s for s, e in spans) == pytest.approx(job.duration)
        late = sum(spans[-1][1] > job.deadline + 1e-6 for job, spans in zip(report.jobs, runs))
        score = next(s for s in report.scores if s.policy == policy)
        if policy != "greedy":
            assert late == 0 and score.deadline_misses == 0, policy
    fcfs, oracle = report.scores[0], report.scores[3]
    assert fcfs.saving_vs_fcfs_pct == 0 and fcfs.dirtier_than_fcfs == 0 and fcfs.days_not_worse == fcfs.days == 3
    assert oracle.fraction_of_oracle == pytest.approx(1.0) and oracle.saving_vs_fcfs_pct > 0
    assert fcfs.mean_wait_hours <= oracle.mean_wait_hours and len(scores) == 6


def test_the_joint_plan_with_a_perfect_forecast_saves_what_the_oracle_saves():
    series = daily_series(seed=3)
    report = run_capacity(series, Setup(forecast_error=0.0, policies=("fcfs", "joint", "oracle-capacity")), 1,
                          table=workload.sweep(evening_sweep()))  # fmt: skip
    joint, oracle = report.scores[1], report.scores[2]
    assert joint.total_kg == pytest.approx(oracle.total_kg, rel=1e-6) and joint.fraction_of_oracle == pytest.approx(1.0)


def test_the_stampede_is_counted_late_not_hidden():
    """Eight experiments of 4 h on one worker, due 36 h later: 32 h of work fit only if they start at once."""
    series = daily_series()
    table = workload.sweep(
        workload.Sweep(START + DAY, START + 2 * DAY, 8, "17:00", (4 * 3600.0, 4 * 3600.0), 36 * 3600.0)
    )
    report = run_capacity(series, Setup(forecast_error=0.1), 1, table=table)
    greedy = next(s for s in report.scores if s.policy == "greedy")
    runs = report.runs[("greedy", 0)]
    assert greedy.deadline_misses == sum(spans[-1][1] > job.deadline for job, spans in zip(report.jobs, runs)) > 0
    assert next(s for s in report.scores if s.policy == "joint").deadline_misses == 0


def test_the_command_scores_a_sweep_and_names_a_bad_capacity(tmp_path):
    trace = tmp_path / "trace.csv"
    series = daily_series()
    stamps = np.datetime_as_string(series.boundaries[:-1].astype("datetime64[s]"))
    trace.write_text("timestamp,carbon_intensity\n" + "".join(f"{t}Z,{v}\n" for t, v in zip(stamps, series.values)))
    jobs = tmp_path / "jobs.csv"
    made = CliRunner().invoke(app, [
        "workload", "sweep", "-o", str(jobs), "--from", "2024-01-02T00:00Z", "--until", "2024-01-04T00:00Z",
        "--count", "4", "--at", "17:00", "--durations", "1h-3h", "--deadline", "36h", "--step", "1h",
    ])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert len(load_jobs(jobs)) == 8
    result = CliRunner().invoke(app, ["backtest", "--trace", str(trace), "--jobs", str(jobs), "--capacity", "2"])
    assert result.exit_code == 0, result.output
    assert all(policy in result.stdout for policy in ("fcfs", "greedy", "joint", "oracle-capacity"))
    assert "joint-hedged" not in result.stdout
    hedged = CliRunner().invoke(app, ["backtest", "--trace", str(trace), "--jobs", str(jobs), "--capacity", "2",
                                      "--policy", "fcfs,joint-hedged", "--json"])  # fmt: skip
    assert hedged.exit_code == 0, hedged.output
    assert [row["policy"] for row in json.loads(hedged.stdout)] == ["fcfs", "joint-hedged"]
    for flags, message in (
        (["--capacity", "0"], "--capacity: must be a whole number of workers"),
        (["--capacity", "2", "--policy", "rolling"], "--policy: 'rolling' is not a policy with a capacity"),
        (["--capacity", "2", "--per-job", str(tmp_path / "p.csv")], "--per-job: not written"),
    ):
        bad = CliRunner().invoke(app, ["backtest", "--trace", str(trace), "--jobs", str(jobs), *flags])
        assert bad.exit_code == 2 and message in bad.stderr, bad.output


def test_the_error_band_is_learnt_only_from_forecasts_whose_target_has_ended():
    """A forecast exact until row 40 and 100 g/kWh off after: the band is infinite before any error is known, 0 at
    row 40 at every lead (and beyond the horizon), and grows only once the wrong targets have ended."""
    grid = to_grid(daily_series())

    class Wrong(Forecasts):
        label = "exact, then wrong"

        def forecast(self, rows, horizon):
            targets = np.minimum(rows[:, None] + np.arange(horizon), len(grid) - 1)
            return grid.values[targets] + np.where(targets >= 40, 100.0, 0.0)

    band = cap.ErrorBand(grid, Wrong(), np.array([5, 40, 80]), 6)
    assert np.all(np.isinf(band.at(5, 6)))  # too few errors known yet: nothing is sure
    assert np.all(band.at(40, 6) == 0.0) and np.all(band.at(40, 9)[6:] == 0.0)
    assert np.all(band.at(80, 6) > 0) and np.all(np.diff(band.at(80, 6)) >= 0)


def test_a_hedged_joint_plan_keeps_every_job_at_its_first_come_start_when_no_saving_clears_the_band():
    series = daily_series(seed=5)
    table = workload.sweep(evening_sweep())
    policies = ("fcfs", "joint-hedged", "joint")
    wild = run_capacity(series, Setup(forecast_error_g=2000.0, policies=policies), 2, table=table)
    assert wild.runs[("joint-hedged", 0)] == wild.runs[("fcfs", 0)]
    assert wild.runs[("joint", 0)] != wild.runs[("fcfs", 0)]
    exact = run_capacity(series, Setup(forecast_error=0.0, policies=policies), 2, table=table)
    fcfs, hedged = exact.scores[0], exact.scores[1]
    assert hedged.saving_vs_fcfs_pct > 0 and hedged.deadline_misses == 0 and hedged.days_not_worse == hedged.days
    assert max_running(exact.runs[("joint-hedged", 0)]) <= 2 and fcfs.total_kg > hedged.total_kg


def test_joint_hedged_expects_the_last_days_jobs_again_a_day_later_at_their_first_come_starts():
    """The capacity reserve: the jobs that arrived in the last day, again a day later (within the pending jobs'
    reach and the forecast), each with the start one worker would give it first-come; older jobs are not expected,
    nor one whose first-come run would not end inside the forecast."""
    from carbon_pipe.backtest.forecasts import SyntheticForecasts
    from carbon_pipe.scheduling.joint import QueuedJob

    now = START + 17 * 3600.0
    jobs = [QueuedJob("a", now, now + 2 * DAY, 2 * 3600.0, 1.0), QueuedJob("b", now, now + 2 * DAY, 3 * 3600.0, 1.0),
            QueuedJob("old", now - 2 * DAY, now, 3600.0, 1.0)]  # fmt: skip
    grid = to_grid(daily_series())
    band = cap.ErrorBand(grid, SyntheticForecasts(grid, 0.0, 0), np.array([17]), 6)
    hedge = cap.HedgeToFirstCome(grid, cap.fcfs(grid, jobs, 1), band, 1)
    pending = [(0, jobs[0]), (1, jobs[1])]
    expected = hedge.recurring(jobs, pending, now, now + 43 * 3600.0)
    assert [(job.name, job.arrival, job.deadline, start) for job, start in expected] == [
        ("expected a", now + DAY, now + 43 * 3600.0, now + DAY),
        ("expected b", now + DAY, now + 43 * 3600.0, now + DAY + 2 * 3600.0),
    ]
    shorter = hedge.recurring(jobs, pending, now, now + DAY + 4 * 3600.0)
    assert [(job.name, start) for job, start in shorter] == [("expected a", now + DAY)]
