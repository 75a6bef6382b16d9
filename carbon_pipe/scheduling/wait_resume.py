"""The state of an unfinished wait, so that rerunning wait-for-window keeps the job's submission time and deadline.

decision.json and horizon.json are DVC outs written when the wait ends; `dvc repro` deletes them before it reruns
the stage. Without this state a killed or stopped wait would restart with a new submission time, a later deadline
and the baseline placed later. The state (layout.WAIT_STATE) is not an out and is git-ignored, like the train
stages' resume folders. It is written atomically as soon as the first plan is made (so a SIGKILL mid-wait leaves
it) or when a signal stops the first fetch, updated at every re-plan, and removed once a decision is complete.

It belongs to one job: its fingerprint covers the params the stage reads and its code (what dvc.yaml lists for
wait-for-window; a test keeps them equal), so a change starts a fresh wait. So does a state that cannot be read,
or one submitted in the future or longer ago than carbon.horizon; such a state is set aside with one line.
On the simulated clock the submission time is scheduler.now, a param: resuming keeps it and counts the attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from pydantic import ConfigDict, ValidationError

from ..artifacts import FROM_FILE, ArtifactModel, Instant, problem, read_json, write_model
from ..config.params import Params
from ..errors import ArtifactError
from ..layout import WAIT_STATE
from ..timeutil import format_duration, iso
from .decision import ResumedWait, WaitAttempt
from .outlook import latest_start

if TYPE_CHECKING:
    from .outlook import Outlook

SET_ASIDE = WAIT_STATE.with_name(WAIT_STATE.name + ".set-aside")  # the last state that was not resumed, for a look

# What decides the stage's outputs, as dvc.yaml lists it for wait-for-window (deps relative to carbon_pipe/).
SCHEDULING_PARAMS = (
    "carbon",
    "scheduler",
    "data.dataset",
    "data.train_limit",
    "data.path",
    "data.class",
    "data.test_fraction",
    "train.epochs",
)
SCHEDULING_CODE = (
    "pipeline/wait_for_window.py", "scheduling", "intensity", "datasets/catalog.py", "datasets/manifest.py",
    "training/duration.py", "training/run_summary.py",
)
PACKAGE = Path(__file__).resolve().parents[1]


def wait_fingerprint(params: Params) -> str:
    """A digest of the params the stage reads and of its code: the same job, planned the same way."""
    dumped = params.model_dump(mode="json", by_alias=True)
    digest = hashlib.sha256()
    for key in SCHEDULING_PARAMS:
        value = dumped
        for part in key.split("."):
            value = value[part]
        digest.update(json.dumps({key: value}, sort_keys=True).encode())
    for name in SCHEDULING_CODE:
        path = PACKAGE / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(source.relative_to(PACKAGE)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class WaitRecord(ArtifactModel):
    """layout.WAIT_STATE: the job's fingerprint, its submission, and every attempt, the last one the latest."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    submitted: Instant
    attempts: list[WaitAttempt]


@dataclass
class WaitState:
    """When the job was submitted and every attempt at waiting for it, the last one being this attempt's."""

    fingerprint: str
    submitted: float
    attempts: list[WaitAttempt] = field(default_factory=list)

    def planned(self, outlook: Outlook, now: float) -> None:
        self._update_last(planned_start=outlook.plan.start, last_plan=now)

    def stopped(self, signal_name: str, now: float) -> None:
        self._update_last(stopped_by=signal_name, stopped_at=now)

    def _update_last(self, **changes: Any) -> None:
        self.attempts[-1] = self.attempts[-1].model_copy(update=changes)
        write_model(WAIT_STATE, WaitRecord(fingerprint=self.fingerprint, submitted=self.submitted,
                                           attempts=self.attempts))

    @staticmethod
    def remove() -> None:
        WAIT_STATE.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # no empty folder left behind; one holding a set-aside state stays
            WAIT_STATE.parent.rmdir()

    def record(self) -> Optional[ResumedWait]:
        """decision.json's `resumed_wait`: None for a wait done in one attempt."""
        if len(self.attempts) < 2:
            return None
        return ResumedWait(
            first_submitted=self.submitted,
            attempts=len(self.attempts),
            earlier_attempts=self.attempts[:-1],
            state_file=str(WAIT_STATE),
        )


def begin_wait(params: Params, now: float, say: Callable[[str], None]) -> WaitState:
    """This attempt's state: the unfinished wait of the same job if one is recorded, else a wait submitted now."""
    fingerprint = wait_fingerprint(params)
    attempt = WaitAttempt(started=now)
    earlier, why_not = read_state(fingerprint, now, params.carbon.horizon)
    if earlier is None:
        if why_not:
            WAIT_STATE.replace(SET_ASIDE)
            say(f"wait-for-window: set aside {WAIT_STATE} ({why_not}; now {SET_ASIDE}): starting a fresh wait")
        return WaitState(fingerprint, now, [attempt])
    state = WaitState(fingerprint, earlier.submitted, [*earlier.attempts, attempt])
    latest = latest_start(params, state.submitted)
    when = (
        f"latest start {iso(latest)}, in {format_duration(latest - now)}"
        if latest > now
        else f"its latest start {iso(latest)} passed {format_duration(now - latest)} ago: starting now"
    )
    say(
        f"wait-for-window: resuming the wait submitted at {iso(state.submitted)} "
        f"(attempt {len(state.attempts)}; {when})"
    )
    return state


def read_state(fingerprint: str, now: float, max_age: float) -> tuple[Optional[WaitState], str]:
    """The recorded wait of this job, or None and why it cannot be resumed ('' when there is none)."""
    if not WAIT_STATE.exists():
        return None, ""
    try:
        record = WaitRecord.model_validate(read_json(WAIT_STATE), context=FROM_FILE)
    except ArtifactError as exc:
        return None, str(exc).removeprefix(f"{WAIT_STATE} is ")
    except ValidationError as exc:
        return None, f"unreadable: {problem(exc)}"
    if record.fingerprint != fingerprint:
        return None, "an unfinished wait of other params or code"
    submitted = record.submitted
    if submitted > now:
        return None, f"submitted at {iso(submitted)}, in the future"
    if now - submitted > max_age:
        return None, f"submitted more than carbon.horizon ({format_duration(max_age)}) ago, at {iso(submitted)}"
    return WaitState(fingerprint, submitted, list(record.attempts)), ""
