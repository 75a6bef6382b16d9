"""The queue's planning policy: `joint`, or `joint-hedged` (the capacity backtest's hedge towards first-come, one
implementation in scheduling/hedged.py); a policy it does not know is one line."""

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.backtest import capacity as cap
from carbon_pipe.backtest.grid import to_grid
from carbon_pipe.cli import app
from carbon_pipe.errors import UsageError
from carbon_pipe.queue.planning import QueuePolicy, first_come_plan, job_of, plan_queue
from carbon_pipe.queue.store import Entry

from ..backtest.test_capacity import START, daily_series

HOUR = 3600.0


class RelativeBand:
    """The error band the queue assumes, for the backtest: `pct` % of each expected point."""

    def __init__(self, expect: cap.Actuals, pct: float) -> None:
        self.expect, self.pct = expect, pct

    def at(self, row: int, points: int) -> np.ndarray:
        return self.pct / 100 * self.expect.series(row).values[:points]


def entries(now: float) -> list[Entry]:
    hours = (1, 3, 2, 4, 2)
    return [
        Entry(name=f"e{k}", overrides={}, arrival=now, deadline=now + 20 * HOUR, duration=h * HOUR,
              duration_basis="given", power_kw=1.0, power_basis="given")
        for k, h in enumerate(hours)
    ]  # fmt: skip


@pytest.mark.parametrize("error_pct", [10.0, 30.0])
def test_the_queues_hedged_plan_is_the_capacity_backtests_for_the_same_jobs_and_forecast(error_pct):
    grid = to_grid(daily_series(days=3, seed=3))
    now = START + 17 * HOUR
    queued = entries(now)
    jobs = [job_of(entry) for entry in queued]
    actuals = cap.Actuals(grid)
    row = int(round(grid.index(now)))
    hedge = cap.HedgeToFirstCome(grid, cap.fcfs(grid, jobs, 2), RelativeBand(actuals, error_pct), 2)
    runs, *_ = cap.joint(grid, jobs, 2, actuals, np.array([row]), HOUR, hedge)
    series = actuals.series(row)
    hedged = plan_queue(queued, [], series, 2, now, HOUR, QueuePolicy("joint-hedged", error_pct))
    assert [[(c.start, c.end) for c in slot.chunks] for slot in hedged.slots] == runs
    joint = plan_queue(queued, [], series, 2, now, HOUR)
    first_come = first_come_plan(jobs, series, 2, now)
    assert first_come.total_g >= hedged.total_g >= joint.total_g
    if error_pct == 30.0:  # a wide band: some moves are no longer sure, some still are
        assert first_come.total_g > hedged.total_g > joint.total_g


def test_an_unknown_queue_policy_or_a_negative_forecast_error_is_one_line():
    with pytest.raises(UsageError, match="--policy: 'greedy' is not a queue policy"):
        QueuePolicy("greedy")
    with pytest.raises(UsageError, match="--forecast-error"):
        QueuePolicy("joint-hedged", -5.0)
    result = CliRunner().invoke(app, ["queue", "plan", "--policy", "stampede"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "carbon-pipe: error: --policy: 'stampede' is not a queue policy (known: joint, joint-hedged)"
    ]
