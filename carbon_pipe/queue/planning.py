"""The queue's plan: its entries as jobs for the joint planner (scheduling/joint.py, pure), the forecast they are
planned on (fetched from the configured sources, as wait-for-window fetches), and the plan's table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..config.params import Params
from ..errors import FieldError, UsageError
from ..intensity.series import IntensitySeries
from ..intensity.sources import fetch_series
from ..scheduling.hedged import hedged_to_first_come
from ..scheduling.joint import JointPlan, QueuedJob, first_come_plan, own_best_window_plan, plan_jobs
from ..scheduling.queued import Pause
from ..timeutil import iso
from .store import Entry

QUEUE_POLICIES = ("joint", "joint-hedged")
SLOT_TOLERANCE = 1e-3  # the planner rounds its starts to microseconds
HOLD_GRACE = 5.0  # seconds past its time a pause may still be marked (the run polls its marker every second)


@dataclass(frozen=True)
class QueuePolicy:
    """How the queue plans: `joint` (least expected grams), or `joint-hedged` (each entry held at its first-come
    start unless a move saves more than the forecast could be wrong by: `forecast_error_pct` of each point)."""

    name: str = "joint"
    forecast_error_pct: float = 10.0

    def __post_init__(self) -> None:
        if self.name not in QUEUE_POLICIES:
            raise UsageError(f"--policy: {self.name!r} is not a queue policy (known: {', '.join(QUEUE_POLICIES)})")
        if not 0 <= self.forecast_error_pct < 1000:
            raise UsageError(f"--forecast-error: must be a percentage from 0 to below 1000, not "
                             f"{self.forecast_error_pct:g}")

    def method(self, plan: JointPlan) -> str:
        """How a plan was made, as the entries' slots record it: the solver's method, and the policy if hedged."""
        return plan.method if self.name == "joint" else f"{self.name} {plan.method}"

    def plan(self, jobs: Sequence[QueuedJob], held: Sequence[bool], series: IntensitySeries, workers: int,
             now: float, step: Optional[float]) -> JointPlan:
        """The plan of `jobs`; under joint-hedged those `held` are hedged towards their first-come starts."""
        if self.name == "joint":
            return plan_jobs(jobs, series, workers, now, step=step)
        band = self.forecast_error_pct / 100 * series.values
        return hedged_to_first_come(jobs, series, band, workers, now, held, step)


def check_workers(workers: int) -> int:
    if workers < 1:
        raise UsageError(f"--workers: at least one worker is needed to run anything, got {workers}")
    return workers


def forecast(params: Params, entries: Sequence[Entry], now: float) -> IntensitySeries:
    """The intensities from the earliest arrival towards the latest deadline, from carbon.sources with their
    fallback, as wait-for-window fetches them. A source must reach carbon.horizon ahead of now (or the last deadline,
    if sooner) and at least far enough to run every entry from now; the planner keeps entries inside what it got."""
    start = min([now, *(entry.arrival for entry in entries)])
    last_deadline = max([now, *(entry.deadline for entry in entries)])
    runnable = max([now, *(max(entry.arrival, now) + entry.duration for entry in entries)])
    need_until = max(runnable, min(last_deadline, now + params.carbon.horizon))
    return fetch_series(params.carbon, start, max(last_deadline, now + params.carbon.horizon), need_until).series


def job_of(entry: Entry) -> QueuedJob:
    """An interruptible entry (one with a chunk floor) is planned in chunks, each at least that long."""
    chunked = entry.chunk_floor is not None
    return QueuedJob(entry.name, entry.arrival, entry.deadline, entry.duration, entry.power_kw, chunked,
                     entry.chunk_floor or 0.0)  # fmt: skip


def chunk_phase(entry: Entry, now: float, pause: Optional[Pause]) -> Optional[str]:
    """Where a started interruptible entry is in its chunks, for `queue status` (`pause`: as its run marks it, None
    while it runs); None for any other entry."""
    chunks = entry.slot.chunks if entry.slot is not None and entry.state == "started" else []
    if not chunks:
        return None
    if pause is not None:
        held = "" if pause.held_until is None else ", held by queue run for a worker"
        late = " (its next chunk's SLURM job has not begun yet)" if entry.slurm_jobs else \
            " (overdue: is its run still there?)"
        overdue = late if now > pause.until + HOLD_GRACE else ""
        return f"paused until {iso(pause.until)}{held}{overdue}"
    for index, (start, end) in enumerate(chunks, start=1):
        if start - SLOT_TOLERANCE <= now < end:
            return f"running: chunk {index} of {len(chunks)} planned to end {iso(end)}"
    ended = [index for index, (_, end) in enumerate(chunks, start=1) if end <= now]
    return f"running past chunk {ended[-1] if ended else 1}'s planned end"


def running_jobs(entry: Entry, now: float) -> list[QueuedJob]:
    """What a started entry keeps of the workers, fixed for the plan of the others: a whole one until its expected
    end (at least until now); an interruptible one its chunks still ahead, as planned, each a job of its own."""
    chunks = entry.slot.chunks if entry.slot is not None else []
    if not chunks or now >= chunks[-1][0] - SLOT_TOLERANCE:
        started = now if entry.started_at is None else entry.started_at  # a SLURM job whose start is not known yet
        end = chunks[-1][1] if chunks else started + entry.duration
        left = max(end - now, 1.0)
        return [QueuedJob(entry.name, now, now + left, left, entry.power_kw)]
    ahead = [(max(start, now), end) for start, end in chunks if end > now]
    return [QueuedJob(f"{entry.name}#{index}", start, end, end - start, entry.power_kw)
            for index, (start, end) in enumerate(ahead, start=1)]


def check_entries(entries: Sequence[Entry], now: float) -> None:
    """Each entry can still be placed: one line naming the first that cannot."""
    for entry in entries:
        if entry.deadline <= entry.arrival:
            raise FieldError(f"entry {entry.name}", f"its deadline {iso(entry.deadline)} is before its arrival")
        if entry.duration > entry.deadline - max(entry.arrival, now):
            raise FieldError(
                f"entry {entry.name}",
                f"its duration {entry.duration:.0f} s is longer than the time left to its deadline "
                f"{iso(entry.deadline)} ({max(0.0, entry.deadline - max(entry.arrival, now)):.0f} s)",
            )


def plan_queue(
    pending: Sequence[Entry], running: Sequence[Entry], series: IntensitySeries, workers: int, now: float,
    step: Optional[float] = None, policy: QueuePolicy = QueuePolicy(),
) -> JointPlan:
    """The joint plan of the entries not started yet, around those running (which keep their workers)."""
    check_entries(pending, now)
    kept = [job for entry in running for job in running_jobs(entry, now)]
    jobs = kept + [job_of(entry) for entry in pending]
    return policy.plan(jobs, [False] * len(kept) + [True] * len(pending), series, workers, now, step)


def lanes(plan: JointPlan, workers: Optional[int] = None, fixed: Optional[dict[str, int]] = None) -> dict[str, int]:
    """Each entry's worker over its whole slot (see piece_lanes)."""
    return piece_lanes([(slot.name, slot.start, slot.end) for slot in plan.slots], workers, fixed)


def piece_lanes(
    pieces: Sequence[tuple[str, float, float]], workers: Optional[int] = None, fixed: Optional[dict[str, int]] = None
) -> dict[str, int]:
    """Each piece's worker (a piece: (name, start, end), an entry or one chunk of one): its `fixed` one (a running
    job keeps its lane), else the first lane free at its start (pieces in start order). With `workers`, never more
    lanes than that: should none be free (a running job kept a lane the plan did not expect), the one that frees
    first."""
    fixed = fixed or {}
    free_at: list[float] = [] if workers is None else [float("-inf")] * workers
    lane_of = {}
    for name, start, end in sorted(pieces, key=lambda piece: (piece[0] not in fixed, piece[1], piece[0])):
        free = [index for index, free_from in enumerate(free_at) if free_from <= start + 1e-6]
        lane = fixed.get(name, free[0] if free else len(free_at))
        if lane >= len(free_at):
            if workers is None:
                free_at += [float("-inf")] * (lane + 1 - len(free_at))
            else:
                lane = min(range(workers), key=lambda index: free_at[index])
        free_at[lane] = max(free_at[lane], end)
        lane_of[name] = lane
    return lane_of


@dataclass(frozen=True)
class Comparison:
    """The queue's plan beside the carbon-agnostic first-come plan and each entry's own best window alone."""

    joint: JointPlan
    first_come: JointPlan
    stampede: JointPlan  # each entry takes its own best window, K workers serve them in that order
    own_best: JointPlan  # each entry in its own best window as if it ran alone (a worker each)
    now_g: dict[str, float]  # each entry started now (or at its arrival), alone


def compare_plans(
    entries: Sequence[Entry], series: IntensitySeries, workers: int, now: float, step: Optional[float] = None,
    policy: QueuePolicy = QueuePolicy(),
) -> Comparison:
    check_entries(entries, now)
    jobs = [job_of(entry) for entry in entries]
    now_g = {}
    for job in jobs:
        begin = max(now, job.arrival)
        now_g[job.name] = job.power_kw * series.mean(begin, begin + job.duration) * job.duration / 3600
    return Comparison(
        policy.plan(jobs, [True] * len(jobs), series, workers, now, step),
        first_come_plan(jobs, series, workers, now),
        own_best_window_plan(jobs, series, workers, now),
        own_best_window_plan(jobs, series, len(jobs), now),
        now_g,
    )


def _pct(planned: float, other: float) -> float:
    return 100.0 * (1 - planned / other) if other > 0 else 0.0


def plan_rows(comparison: Comparison) -> list[dict[str, Any]]:
    own = {slot.name: slot for slot in comparison.own_best.slots}
    rows = []
    for slot in comparison.joint.slots:
        now_g, own_g = comparison.now_g[slot.name], own[slot.name].expected_g
        rows.append({
            "entry": slot.name, "start": iso(slot.start), "end": iso(slot.end), "expected_g": slot.expected_g,
            "now_g": now_g, "saving_vs_now_pct": _pct(slot.expected_g, now_g),
            "own_best_g": own_g, "vs_own_best_pct": _pct(slot.expected_g, own_g),
            "chunks": [[iso(chunk.start), iso(chunk.end)] for chunk in slot.chunks],
        })
    return rows


def plan_summary(comparison: Comparison, workers: int, source: str, policy: QueuePolicy = QueuePolicy()
                 ) -> dict[str, Any]:  # fmt: skip
    joint, first = comparison.joint, comparison.first_come
    return {
        "workers": workers, "policy": policy.name, "method": policy.method(joint), "source": source,
        "total_g": joint.total_g, "lower_bound_g": joint.lower_bound_g, "gap": joint.gap,
        "first_come_total_g": first.total_g, "saving_vs_first_come_pct": _pct(joint.total_g, first.total_g),
        "own_best_window_total_g": comparison.stampede.total_g,
        "own_best_window_late": list(comparison.stampede.late),
        "first_come_late": list(first.late),
        "entries": plan_rows(comparison),
    }


def render_table(summary: dict[str, Any]) -> str:
    header = (f"{'entry':<14} {'start (UTC)':<19} {'end':<19} {'chunks':>6} {'expected g':>10} {'vs now':>8} "
              f"{'vs own best':>11}")
    lines = [header, "-" * len(header)]
    for row in summary["entries"]:
        lines.append(
            f"{row['entry']:<14} {row['start'][:19]:<19} {row['end'][:19]:<19} {len(row['chunks']):>6} "
            f"{row['expected_g']:>10.3f} "
            f"{-row['saving_vs_now_pct']:>+7.1f}% {-row['vs_own_best_pct']:>+10.1f}%"
        )
    lines.append(
        f"{summary['method']} plan for {summary['workers']} worker(s) on {summary['source']}: "
        f"{summary['total_g']:.3f} g, first-come {summary['first_come_total_g']:.3f} g "
        f"({summary['saving_vs_first_come_pct']:.1f} % saved), each in its own best window "
        f"{summary['own_best_window_total_g']:.3f} g ({len(summary['own_best_window_late'])} late); "
        f"gap to the LP bound {100 * summary['gap']:.2f} %"
    )
    return "\n".join(lines)


def worth_moving(pending: Sequence[Entry], fresh: JointPlan, series: IntensitySeries, now: float,
                 min_saving_pct: float) -> bool:
    """Whether a re-plan should replace the last plan: only if every entry had a slot still ahead and the fresh
    plan saves more than `min_saving_pct` against keeping those slots on the fresh forecast. Equal plans are many
    in a flat trough, and a solver picks any of them: adopting each would let the starts drift later, re-plan
    after re-plan, until they fall out of the trough."""
    if any(entry.slot is None or entry.slot.start < now for entry in pending):
        return True
    names = {entry.name for entry in pending}
    fresh_g = sum(slot.expected_g for slot in fresh.slots if slot.name in names)
    kept_g = sum(
        entry.power_kw * series.mean(start, end) * (end - start) / 3600
        for entry in pending
        if entry.slot is not None
        for start, end in entry.slot.chunks or [(entry.slot.start, entry.slot.end)]  # the pauses cost nothing
    )
    return fresh_g < kept_g * (1 - min_saving_pct / 100)
