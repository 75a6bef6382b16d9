"""Generated workloads: calendar deadlines worked by hand, seeded ad-hoc jobs, periodic windows, and their files."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner

from carbon_pipe.backtest import workload
from carbon_pipe.backtest.files import load_jobs
from carbon_pipe.cli import app
from carbon_pipe.errors import UsageError

UTC = ZoneInfo("UTC")


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def due(rule: str, finish: str, work_hours=None, zone=UTC) -> str:
    moment = workload.deadline_rule(rule, work_hours, zone)(at(finish))
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%a %Y-%m-%dT%H:%MZ")


@pytest.mark.parametrize(
    "rule, finish, work_hours, expected",
    [
        ("next workday 09:00", "2024-01-05T18:00Z", None, "Mon 2024-01-08T09:00Z"),  # Friday evening: Monday
        ("next workday 09:00", "2024-01-09T08:00Z", None, "Tue 2024-01-09T09:00Z"),
        ("next workday 09:00", "2024-01-09T09:00Z", None, "Tue 2024-01-09T09:00Z"),  # at or after the finish
        ("next workday 09:00", "2024-01-09T12:00Z", None, "Wed 2024-01-10T09:00Z"),
        ("next workday 09:00", "2024-01-09T12:00Z", "09:00-17:00", "Tue 2024-01-09T12:00Z"),  # needed during the day
        ("next workday 09:00", "2024-01-13T12:00Z", "09:00-17:00", "Mon 2024-01-15T09:00Z"),  # Saturday is no workday
        ("next Mon,Thu 09:00", "2024-01-08T09:30Z", None, "Thu 2024-01-11T09:00Z"),
        ("next Mon,Thu 09:00", "2024-01-11T09:00Z", None, "Thu 2024-01-11T09:00Z"),
        ("next Mon,Thu 09:00", "2024-01-12T01:00Z", None, "Mon 2024-01-15T09:00Z"),
        ("next day 06:00", "2024-01-12T07:00Z", None, "Sat 2024-01-13T06:00Z"),
        ("finish", "2024-01-12T07:00Z", None, "Fri 2024-01-12T07:00Z"),
        (workload.LWA_RULE, "2024-01-05T17:30Z", None, "Sat 2024-01-06T09:00Z"),  # the published rule's Friday evening
        (workload.LWA_RULE, "2024-01-05T17:00Z", None, "Fri 2024-01-05T17:00Z"),
        (workload.LWA_RULE, "2024-01-06T08:00Z", None, "Mon 2024-01-08T09:00Z"),
        (workload.LWA_RULE, "2024-01-09T07:30Z", None, "Tue 2024-01-09T09:00Z"),
    ],
)
def test_deadline_rules(rule, finish, work_hours, expected):
    assert due(rule, finish, work_hours) == expected


def test_deadlines_follow_the_local_clock():
    berlin = ZoneInfo("Europe/Berlin")
    assert due("next workday 09:00", "2024-07-02T10:00Z", zone=berlin) == "Wed 2024-07-03T07:00Z"  # summer: UTC+2
    assert due("next workday 09:00", "2024-01-09T10:00Z", zone=berlin) == "Wed 2024-01-10T08:00Z"  # winter: UTC+1
    assert (
        due("next workday 09:00", "2024-03-29T10:00Z", zone=berlin) == "Mon 2024-04-01T07:00Z"
    )  # clocks change on Sunday


@pytest.mark.parametrize("rule", ["next Funday 09:00", "next workday 9", "tomorrow", "next workday 25:00"])
def test_a_bad_deadline_rule_names_the_deadline(rule):
    with pytest.raises(UsageError, match="^deadline: "):
        workload.deadline_rule(rule, None, UTC)


def lwa_like(**changes) -> workload.AdHoc:
    spec = dict(
        since=at("2024-01-01T00:00Z"),
        until=at("2024-07-01T00:00Z"),
        count=800,
        durations=(4 * 3600.0, 10 * 3600.0),
        deadline="next workday 09:00",
        arrivals="09:00-16:30",
        seed=3,
    )
    return workload.AdHoc(**{**spec, **changes})


def test_ad_hoc_jobs_are_seeded_and_keep_to_their_days_times_and_durations():
    table = workload.adhoc(lwa_like())
    again, other = workload.adhoc(lwa_like()), workload.adhoc(lwa_like(seed=4))
    assert np.array_equal(table.arrival, again.arrival) and np.array_equal(table.duration, again.duration)
    assert not np.array_equal(table.arrival, other.arrival)
    moments = [datetime.fromtimestamp(t, timezone.utc) for t in table.arrival]
    assert len(table) == 800 and all(m.weekday() < 5 for m in moments)
    assert {m.hour * 60 + m.minute for m in moments} == set(range(9 * 60, 16 * 60 + 31, 30))  # every slot, no other
    assert set(table.duration / 1800) == set(range(8, 21))  # 4 h to 10 h in 30 min steps, both ends included
    assert np.all(np.diff(table.arrival) >= 0) and np.array_equal(table.nominal, table.arrival)
    finish = table.arrival + table.duration
    assert np.all(table.deadline >= finish) and np.all(table.deadline - finish < 4 * 86400)
    graced = workload.adhoc(lwa_like(grace=1800.0))
    assert np.array_equal(graced.deadline, table.deadline + 1800)


def test_periodic_jobs_sit_in_a_window_around_their_nominal_time():
    spec = workload.Periodic(
        at("2024-01-01T00:00Z"),
        at("2024-01-08T00:00Z"),
        1800.0,
        at="01:00",
        days="Mon-Fri",
        before=2 * 3600.0,
        after=3600.0,
    )
    table = workload.periodic(spec)
    nominal = [datetime.fromtimestamp(t, timezone.utc) for t in table.nominal]
    assert [m.strftime("%a %H:%M") for m in nominal] == [
        "Mon 01:00",
        "Tue 01:00",
        "Wed 01:00",
        "Thu 01:00",
        "Fri 01:00",
    ]
    assert np.all(table.nominal - table.arrival == 2 * 3600) and np.all(table.deadline - table.nominal == 3600 + 1800)
    every = workload.periodic(
        workload.Periodic(at("2024-01-01T00:00Z"), at("2024-01-02T00:00Z"), 3600.0, every=6 * 3600.0)
    )
    assert [datetime.fromtimestamp(t, timezone.utc).hour for t in every.nominal] == [0, 6, 12, 18]


def test_the_command_writes_a_file_backtest_reads(tmp_path):
    path = tmp_path / "jobs.csv"
    result = CliRunner().invoke(
        app,
        [
            "workload",
            "adhoc",
            "-o",
            str(path),
            "--from",
            "2024-01-01T00:00Z",
            "--until",
            "2024-02-01T00:00Z",
            "--count",
            "50",
            "--durations",
            "1h-6h",
            "--deadline",
            "next Mon,Thu 09:00",
            "--timezone",
            "Europe/Berlin",
            "--interruptible",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "workload: 50 jobs written to" in result.stderr
    table = load_jobs(path)
    local = [datetime.fromtimestamp(t, ZoneInfo("Europe/Berlin")) for t in table.deadline]
    assert len(table) == 50 and all(m.weekday() in (0, 3) and (m.hour, m.minute) == (9, 0) for m in local)
    assert table.interruptible.all() and np.array_equal(table.nominal, table.arrival)
    bad = CliRunner().invoke(
        app,
        [
            "workload",
            "adhoc",
            "-o",
            str(tmp_path / "x.csv"),
            "--from",
            "2024-01-01T00:00Z",
            "--until",
            "2024-02-01T00:00Z",
            "--count",
            "5",
            "--durations",
            "1h",
            "--deadline",
            "soon",
        ],
    )
    assert bad.exit_code == 2 and "--deadline: 'soon' is not a rule" in bad.stderr and not (tmp_path / "x.csv").exists()


def test_a_jobs_file_round_trips(tmp_path):
    from carbon_pipe.backtest.files import write_jobs

    table = workload.adhoc(lwa_like(count=40, timezone="America/New_York", interruptible=True))
    write_jobs(tmp_path / "jobs.csv", table)
    back = load_jobs(tmp_path / "jobs.csv")
    for name in ("arrival", "duration", "deadline", "nominal", "interruptible"):
        assert np.array_equal(getattr(back, name), getattr(table, name)), name
    assert list(back.ids) == list(table.ids)
    assert timedelta(seconds=float(back.duration.min())) >= timedelta(hours=4)
