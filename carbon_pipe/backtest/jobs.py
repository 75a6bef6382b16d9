"""Jobs: as a workload lists them (times in seconds), and placed on the trace's grid (indices and steps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import FieldError, UsageError
from ..timeutil import format_duration, iso
from .grid import Grid

EPSILON = 1e-9  # in grid steps: a time this close to a grid point is on it


@dataclass(frozen=True)
class JobTable:
    """One entry per job, in epoch seconds: it may start from `arrival` and must finish by `deadline`.

    `nominal` is when a carbon-unaware scheduler would start it (the baseline); `interruptible` says whether the
    interruptible policies may run it in pieces.
    """

    ids: np.ndarray
    arrival: np.ndarray
    duration: np.ndarray
    deadline: np.ndarray
    nominal: np.ndarray
    interruptible: np.ndarray
    origin: str = "jobs"

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Jobs:
    """Jobs on a grid, in arrival order: job j starts at a point in [arrival[j], arrival[j] + slack[j]] and runs
    duration[j] points. `nominal[j]` is the baseline's start, inside that window.
    """

    arrival: np.ndarray
    duration: np.ndarray
    slack: np.ndarray
    nominal: np.ndarray
    interruptible: np.ndarray
    ids: np.ndarray

    @classmethod
    def uniform(cls, arrivals: np.ndarray, duration: int, slack: int) -> "Jobs":
        """Jobs of one length and slack, each starting at arrival in the baseline."""
        arrivals = np.asarray(arrivals, dtype=np.int64)
        count = len(arrivals)
        return cls(
            arrivals, np.full(count, duration, dtype=np.int64), np.full(count, slack, dtype=np.int64), arrivals,
            np.ones(count, dtype=bool), np.arange(count).astype(str),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def span(self) -> np.ndarray:
        """Points from arrival to the deadline: slack + duration."""
        return self.slack + self.duration


@dataclass(frozen=True)
class Placement:
    """The jobs that fit the trace, the ones left out (id and why), and how many had to be rounded onto the grid."""

    jobs: Jobs
    dropped: tuple[tuple[str, str], ...] = ()
    rounded: int = 0
    outside_period: int = 0


def periodic(
    grid: Grid,
    duration: float,
    slack: float,
    every: float,
    first: int = 0,
    end: Optional[int] = None,
    not_before: Optional[float] = None,
) -> Jobs:
    """Arrivals every `every` from point `first` while arrival + slack + duration stays before point `end`."""
    end = len(grid) if end is None else end
    if duration <= 0:
        raise FieldError("duration", "must be positive")
    if every <= 0:
        raise FieldError("every", "must be positive")
    run, wait, spacing = grid.slots(duration, "duration"), grid.slots(slack, "slack"), grid.slots(every, "every")
    last = end - wait - run
    if last < first:
        raise UsageError(
            f"trace too short: {format_duration((end - first) * grid.step)} of data cannot hold one "
            f"{format_duration(duration)} job with {format_duration(slack)} slack"
        )
    arrivals = np.arange(first, last + 1, spacing)
    if not_before is not None:
        arrivals = arrivals[arrivals >= np.ceil(grid.index(not_before) - EPSILON)]
        if len(arrivals) == 0:
            raise UsageError("no job fits between the first forecast issue and the end of the trace")
    return Jobs.uniform(arrivals, run, wait)


def place(
    table: JobTable, grid: Grid, first: int = 0, end: Optional[int] = None, not_before: Optional[float] = None
) -> Placement:
    """Put listed jobs on the grid; keep those arriving in points [first, end) whose window the data covers.

    Arrival and nominal start are rounded up to the next point, the duration up to whole points and the slack
    (deadline - arrival - duration) down, so a job never gets more room than it had. Jobs arriving outside the
    period or wholly outside the data are counted; jobs that cross an end of the data, have no room left after
    rounding, or arrive before the first forecast issue are dropped and listed.
    """
    end = len(grid) if end is None else end
    arrival = np.ceil(grid.index(table.arrival) - EPSILON)
    duration = np.ceil(table.duration / grid.step - EPSILON)
    slack = np.floor((table.deadline - table.arrival - table.duration) / grid.step + EPSILON)
    offset = np.clip(np.floor((table.nominal - table.arrival) / grid.step + EPSILON), 0, np.maximum(slack, 0))
    rounded = (np.abs(grid.index(table.arrival) - arrival) > EPSILON) | (
        np.abs(table.duration / grid.step - duration) > EPSILON
    )
    finish = arrival + np.maximum(slack, 0) + duration
    # a job crossing the start of the data is dropped (listed) unless the period starts later anyway
    outside = (finish <= 0) | (arrival >= len(grid)) | (arrival >= end) | ((arrival < first) & (first > 0))
    reasons = _reasons(grid, arrival, slack, finish, not_before)
    reasons[outside] = ""
    keep = np.flatnonzero(~outside & (reasons == ""))
    keep = keep[np.argsort(arrival[keep], kind="stable")]  # the policies stream through jobs in arrival order
    listed = reasons != ""
    jobs = Jobs(
        arrival[keep].astype(np.int64), duration[keep].astype(np.int64), slack[keep].astype(np.int64),
        (arrival + offset)[keep].astype(np.int64), table.interruptible[keep].astype(bool), table.ids[keep],
    )  # fmt: skip
    if len(jobs) == 0:
        raise UsageError(f"{table.origin}: no job fits the data ({iso(grid.start)} to {iso(grid.end)}) and the period")
    dropped = tuple(zip(map(str, table.ids[listed]), map(str, reasons[listed])))
    return Placement(jobs, dropped, int(np.count_nonzero(rounded[keep])), int(np.count_nonzero(outside)))


def _reasons(
    grid: Grid, arrival: np.ndarray, slack: np.ndarray, finish: np.ndarray, not_before: Optional[float]
) -> np.ndarray:
    """Why each job cannot be scored ("" where it can)."""
    reasons = np.full(len(arrival), "", dtype=object)
    if not_before is not None:
        reasons[arrival < np.ceil(grid.index(not_before) - EPSILON)] = (
            f"it arrives before the first forecast issue ({iso(not_before)})"
        )
    reasons[finish > len(grid)] = f"its deadline is after the data ends ({iso(grid.end)})"
    reasons[arrival < 0] = f"its window opens before the data starts ({iso(grid.start)})"
    reasons[slack < 0] = "no room: on the trace's steps its slack is below zero"
    return reasons
