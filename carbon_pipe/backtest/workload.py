"""Workloads to backtest, generated: jobs repeated around a nominal time, ad-hoc jobs with calendar deadlines, and
sweeps (many experiments submitted together).

Pure: seeded, no clock. Calendar rules work in local time (`timezone`); every time handed out is epoch seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from ..errors import FieldError
from ..timeutil import LAST_EPOCH_SECOND
from .jobs import JobTable

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKDAYS = frozenset(range(5))
LWA_RULE = "lets-wait-awhile-next-workday"


@dataclass(frozen=True)
class Periodic:
    """A job at a nominal time, every day at `at` (local) or every `every` seconds from `since`, until `until`.

    It may start from `before` ahead of its nominal time to `after` behind it.
    """

    since: float
    until: float
    duration: float
    at: Optional[str] = None
    every: Optional[float] = None
    days: str = "all"
    before: float = 0.0
    after: float = 0.0
    timezone: str = "UTC"
    interruptible: bool = False


@dataclass(frozen=True)
class AdHoc:
    """`count` jobs spread evenly over the usable days of [since, until) (local calendar days), seeded.

    Each arrives at a random slot of `arrivals` (local "HH:MM-HH:MM", both ends included, `step` apart), runs a
    random whole number of steps from `durations` (seconds, both ends included) and is due by `deadline`.
    """

    since: float
    until: float
    count: int
    durations: tuple[float, float]
    deadline: str
    days: str = "Mon-Fri"
    arrivals: str = "09:00-17:00"
    step: float = 1800.0
    work_hours: Optional[str] = None
    grace: float = 0.0
    timezone: str = "UTC"
    seed: int = 0
    interruptible: bool = False


@dataclass(frozen=True)
class Sweep:
    """`count` experiments submitted together at `at` (local) on each of `days` in [since, until), like a
    hyperparameter sweep queued at the end of a working day. Each runs a seeded random whole number of `step`s from
    `durations` (both ends included) and all are due `deadline` seconds after their submission."""

    since: float
    until: float
    count: int
    at: str
    durations: tuple[float, float]
    deadline: float
    days: str = "all"
    step: float = 1800.0
    timezone: str = "UTC"
    seed: int = 0
    interruptible: bool = False


def periodic(spec: Periodic, origin: str = "periodic workload") -> JobTable:
    zone = _zone(spec.timezone)
    if spec.duration <= 0:
        raise FieldError("duration", "must be positive")
    if (spec.at is None) == (spec.every is None):
        raise FieldError("at", "give a time of day or a spacing (every), one of them")
    _check_period(spec.since, spec.until)
    if spec.at is not None:
        clock, allowed = _clock(spec.at, "at"), _days(spec.days)
        nominal = [t for t in _local_days(spec.since, spec.until, zone, clock) if spec.since <= t < spec.until]
        nominal = np.array([t for t in nominal if _weekday(t, zone) in allowed], dtype=float)
    elif spec.every > 0:
        _check_count(math.ceil((spec.until - spec.since) / spec.every), "every", "space them further apart")
        nominal = np.arange(spec.since, spec.until, spec.every, dtype=float)
    else:
        raise FieldError("every", "must be positive")
    return _table(
        nominal - spec.before,
        np.full(len(nominal), spec.duration),
        nominal + spec.after + spec.duration,
        nominal,
        spec.interruptible,
        origin,
    )


def adhoc(spec: AdHoc, origin: str = "ad-hoc workload") -> JobTable:
    zone = _zone(spec.timezone)
    if spec.count < 1:
        raise FieldError("count", "must be at least 1")
    _check_count(spec.count, "count", "ask for fewer")
    if not 0 <= spec.seed < 2**63:
        raise FieldError("seed", f"must be from 0 to 2**63 - 1, got {spec.seed}")
    if spec.step <= 0:
        raise FieldError("step", "must be positive")
    _check_period(spec.since, spec.until)
    shortest, longest = spec.durations
    if not 0 < shortest <= longest:
        raise FieldError("durations", "need a positive shortest duration, at most the longest")
    rng = np.random.default_rng(spec.seed)
    due = deadline_rule(spec.deadline, spec.work_hours, zone)
    low, high = _window(spec.arrivals, "arrivals")
    slots = np.arange(low, high + 1, spec.step / 60) * 60.0  # seconds after local midnight
    midnights = [t for t in _local_days(spec.since, spec.until, zone, 0) if spec.since <= t < spec.until]
    allowed = _days(spec.days)
    days = [(t, _existing(slots, t, zone)) for t in midnights if _weekday(t, zone) in allowed]
    days = [(t, times) for t, times in days if len(times)]
    if not days:
        raise FieldError("days", "no day and time in the period to arrive at")
    per_day = rng.multinomial(spec.count, np.full(len(days), 1 / len(days)))
    arrival = np.concatenate([
        [_at(midnight, offset, zone) for offset in np.sort(times[rng.integers(0, len(times), k)])]
        for (midnight, times), k in zip(days, per_day)
    ])  # fmt: skip
    # Whole steps from the shortest, drawn by index: the choices are never listed (1s-100y would be 25 GiB).
    choices = math.floor((longest - shortest) / spec.step + 1e-9) + 1
    duration = shortest + spec.step * rng.integers(0, choices, spec.count)
    finish = arrival + duration
    deadline = np.array([due(t) for t in finish]) + spec.grace
    return _table(arrival, duration, deadline, arrival, spec.interruptible, origin)


MAX_JOBS = 1_000_000  # a workload's jobs: about a century of hourly jobs, a CSV of some 80 MB


def _check_count(count: float, field: str, advice: str) -> None:
    if count > MAX_JOBS:
        raise FieldError(
            field, f"{count:.0f} jobs, more than a workload holds ({MAX_JOBS:,}): {advice} or shorten the period"
        )


def _check_period(since: float, until: float) -> None:
    if until <= since:
        raise FieldError("period", "the period is empty: --until must come after --from")
    days = math.ceil((until - since) / 86400)
    if days > MAX_JOBS:  # calendar rules visit every day: bound them as the jobs are
        raise FieldError("period", f"{days:,} days, longer than a workload spans ({MAX_JOBS:,} days)")


def sweep(spec: Sweep, origin: str = "sweep workload") -> JobTable:
    zone, rng = _zone(spec.timezone), np.random.default_rng(spec.seed)
    if spec.count < 1:
        raise FieldError("count", "must be at least 1")
    if not spec.step > 0:
        raise FieldError("step", "must be positive")
    _check_period(spec.since, spec.until)
    _check_count(spec.count * math.ceil((spec.until - spec.since) / 86400), "count", "ask for fewer")
    shortest, longest = spec.durations
    if longest > shortest and (longest - shortest) / spec.step > MAX_JOBS:
        raise FieldError("step", f"more than {MAX_JOBS:,} durations between the shortest and the longest")
    choices = np.arange(shortest, longest + 1e-9, spec.step)
    if not shortest > 0 or len(choices) == 0:
        raise FieldError("durations", "need a positive shortest duration, at most the longest")
    if spec.deadline < longest:
        raise FieldError("deadline", "leaves the longest experiment no room to run")
    clock, allowed = _clock(spec.at, "at"), _days(spec.days)
    submitted = [t for t in _local_days(spec.since, spec.until, zone, clock) if spec.since <= t < spec.until]
    submitted = np.array([t for t in submitted if _weekday(t, zone) in allowed], dtype=float)
    if len(submitted) == 0:
        raise FieldError("days", "no day in the period to submit on")
    arrival = np.repeat(submitted, spec.count)
    duration = choices[rng.integers(0, len(choices), len(arrival))]
    table = _table(arrival, duration, arrival + spec.deadline, arrival, spec.interruptible, origin)
    names = [f"{datetime.fromtimestamp(t, zone):%Y-%m-%d}.{k}" for t in submitted for k in range(spec.count)]
    return JobTable(
        np.array(names),
        *(getattr(table, f) for f in ("arrival", "duration", "deadline", "nominal", "interruptible")),
        origin,
    )


def deadline_rule(text: str, work_hours: Optional[str], zone: ZoneInfo) -> Callable[[float], float]:
    """When a job that would finish at t is due: 'finish', 'next workday 09:00', 'next Mon,Thu 09:00',
    'next day 09:00', or Let's Wait Awhile's own next-workday rule. With `work_hours` ('09:00-17:00'), a job
    finishing on a workday within them is due at its finish."""
    words = text.strip().split()
    if text.strip() == LWA_RULE:
        return lambda t: _lets_wait_awhile(t, zone)
    if words == ["finish"]:
        return lambda t: t
    if len(words) != 3 or words[0] != "next":
        raise FieldError(
            "deadline",
            f"{text!r} is not a rule (use finish, 'next workday 09:00', 'next Mon,Thu 09:00', 'next day 09:00' or "
            f"{LWA_RULE})",
        )
    days = {"workday": WORKDAYS, "day": frozenset(range(7))}.get(words[1]) or _days(words[1], "deadline")
    clock = _clock(words[2], "deadline")
    hours = None if work_hours is None else _window(work_hours, "work hours")

    def due(t: float) -> float:
        local = datetime.fromtimestamp(t, zone)
        minutes = local.hour * 60 + local.minute + local.second / 60
        if hours is not None and local.weekday() in WORKDAYS and hours[0] <= minutes <= hours[1]:
            return t
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for ahead in range(8):
            candidate = _at(day.timestamp(), clock * 60.0, zone, ahead)
            if candidate >= t and datetime.fromtimestamp(candidate, zone).weekday() in days:
                return candidate
        raise AssertionError("a weekday recurs within a week")

    return due


def _lets_wait_awhile(t: float, zone: ZoneInfo) -> float:
    """Let's Wait Awhile's rule as published: on a workday from 09:00 to 17:00 due at the finish; before 09:00 at
    09:00; after 17:00 the next day at 09:00 (so a Friday evening is due on Saturday); a weekend on Monday 09:00."""
    local = datetime.fromtimestamp(t, zone)
    hour = local.hour + (0.5 if local.minute == 30 else 0.0)  # the published code reads the time this way
    nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
    if local.weekday() == 5:
        return _shift(nine, 2)
    if local.weekday() == 6 or hour > 17:
        return _shift(nine, 1)
    return nine.timestamp() if hour < 9 else t


def _shift(moment: datetime, days: int) -> float:
    """The same local time `days` later (not 24 h x days across a change of clocks)."""
    return _at(
        moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp(),
        moment.hour * 3600.0 + moment.minute * 60.0,
        moment.tzinfo,
        days,
    )


def _at(midnight: float, seconds: float, zone, days_ahead: int = 0) -> float:
    """Local midnight's date, `days_ahead` days on, at `seconds` after its midnight, as epoch seconds. A time the
    clocks skip (spring forward) is the moment they jump, as cron does, not an hour after it."""
    day = datetime.fromtimestamp(midnight, zone).date() + timedelta(days=days_ahead)
    clock = (datetime.min + timedelta(seconds=float(seconds))).time()
    moment = datetime.combine(day, clock, tzinfo=zone)
    t = moment.timestamp()
    if datetime.fromtimestamp(t, zone).replace(tzinfo=None) != moment.replace(tzinfo=None):
        gap = _skipped(day, zone)
        return _day_start(day, zone) + gap[0] if gap else t
    return t


def _day_start(day: date, zone) -> float:
    return datetime.combine(day, time(), tzinfo=zone).timestamp()


def _offset(t: float, zone) -> float:
    return datetime.fromtimestamp(t, zone).utcoffset().total_seconds()


def _skipped(day: date, zone) -> Optional[tuple[float, float]]:
    """The wall-clock times of `day` a change of clocks skips, as seconds after the day's start, if any."""
    start, end = _day_start(day, zone), _day_start(day + timedelta(days=1), zone)
    opening = datetime.fromtimestamp(start, zone)
    if opening.date() == day and opening.time() != time():  # midnight itself is skipped: the day opens later
        return 0.0, (opening - opening.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    jump = _offset(end, zone) - _offset(start, zone)
    if jump <= 0:
        return None
    low, high = start, end  # the offset changes in (low, high]; changes fall on whole seconds
    while high - low > 1:
        middle = math.floor((low + high) / 2)
        low, high = (middle, high) if _offset(middle, zone) == _offset(start, zone) else (low, middle)
    return high - start, high - start + jump


def _existing(slots: np.ndarray, midnight: float, zone) -> np.ndarray:
    """The slots (seconds after local midnight) that exist on that day's wall clock."""
    gap = _skipped(datetime.fromtimestamp(midnight, zone).date(), zone)
    return slots if gap is None else slots[(slots < gap[0]) | (slots >= gap[1])]


def _local_days(since: float, until: float, zone: ZoneInfo, minutes: float) -> list[float]:
    """The local time `minutes` after midnight on every local day touching [since, until)."""
    first = datetime.fromtimestamp(since, zone).date()
    count = (datetime.fromtimestamp(until, zone).date() - first).days + 1
    midnight = datetime.combine(first, datetime.min.time(), tzinfo=zone).timestamp()
    return [_at(midnight, minutes * 60.0, zone, k) for k in range(count)]


def _table(arrival, duration, deadline, nominal, interruptible: bool, origin: str) -> JobTable:
    count = len(arrival)
    for name, times in (("arrival", arrival), ("deadline", deadline)):  # nominal lies between them
        outside = np.flatnonzero(~((np.asarray(times) >= 0) & (np.asarray(times) < LAST_EPOCH_SECOND)))
        if len(outside):
            raise FieldError("period", f"job {outside[0]}'s {name} falls outside the years 1970 to 9999 (a trace's): "
                                       "move the period or shorten the durations, window or grace")  # fmt: skip
    return JobTable(
        np.arange(count).astype(str),
        np.asarray(arrival, float),
        np.asarray(duration, float),
        np.asarray(deadline, float),
        np.asarray(nominal, float),
        np.full(count, interruptible),
        origin,
    )


def _weekday(t: float, zone: ZoneInfo) -> int:
    return datetime.fromtimestamp(t, zone).weekday()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError("timezone", f"unknown time zone {name!r} (use e.g. UTC, Europe/Berlin)") from None


def _clock(text: str, field: str) -> float:
    """'HH:MM' -> minutes after midnight."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise FieldError(field, f"{text!r} is not a time of day (use HH:MM, e.g. 09:00)")
    return int(match[1]) * 60 + int(match[2])


def _window(text: str, field: str) -> tuple[float, float]:
    """'HH:MM-HH:MM' -> minutes after midnight of both ends; the end may not come before the start."""
    low, high = (_clock(part, field) for part in _pair(text, field))
    if high < low:
        raise FieldError(field, f"{text!r} ends before it starts (a window within one day, e.g. 09:00-17:00)")
    return low, high


def _pair(text: str, field: str) -> tuple[str, str]:
    parts = text.split("-")
    if len(parts) != 2:
        raise FieldError(field, f"{text!r} is not a range (use e.g. 09:00-17:00)")
    return parts[0], parts[1]


def _days(text: str, field: str = "days") -> frozenset[int]:
    """'all', 'Mon-Fri', 'Mon,Thu' (or a mix) -> weekday numbers, Monday 0."""
    if text.strip().lower() == "all":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        ends = part.strip().split("-")
        if not all(end[:3] in WEEKDAYS and len(end) >= 3 for end in ends) or len(ends) > 2:
            raise FieldError(field, f"{text!r} is not a set of weekdays (use e.g. Mon-Fri, Mon,Thu or all)")
        first, last = WEEKDAYS.index(ends[0][:3]), WEEKDAYS.index(ends[-1][:3])
        days.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)])
    return frozenset(days)
