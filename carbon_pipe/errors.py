"""Typed errors, which the CLI turns into one line on stderr and a non-zero exit, and notices."""

from __future__ import annotations

import signal
import sys

from .secrets import redact
from .signals import exit_code


def notice(line: str) -> None:
    """One line on stderr: something was found and handled (a corrupt file set aside), and what was done instead."""
    print(f"carbon-pipe: note: {redact(line)}", file=sys.stderr)


class CarbonPipeError(Exception):
    """Base class; `exit_code` is what the CLI exits with. The message is redacted as the error is made, so no
    credential a server echoed travels on in it (to a recorded failure, a log line, the terminal)."""

    exit_code = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(message))


class UsageError(CarbonPipeError):
    """Bad input from the user: params, options, files they pointed us at."""

    exit_code = 2


class FieldError(UsageError):
    """Bad input for a named concept (a job's duration, the forecast error); a front end may name its own flag for
    it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class ParamsError(UsageError):
    """params.yaml is unreadable or does not match the schema."""


class DataError(UsageError):
    """The dataset cannot be read: a missing mirror or corrupt file in it, a bad image folder, a failing data.class."""


class SourceError(CarbonPipeError):
    """A carbon-intensity source failed (network, HTTP status, payload shape)."""


class FetchCutShort(SourceError):
    """A source ran out of the time a re-plan gave it (until the job's latest start): the wait keeps its plan."""


class ArtifactError(CarbonPipeError):
    """An artifact an earlier stage should have written is missing or malformed."""


class Busy(CarbonPipeError):
    """Another process holds the folder this command writes (a second trainer of one run, a second wait)."""


class ModelError(UsageError):
    """model.class cannot be imported or built, or the model does not fit the dataset's shapes."""


class TrainingStopped(CarbonPipeError):
    """Training stopped early after checkpointing (a signal, or the segment's budget); the same command resumes it."""

    def __init__(self, message: str, step: int, signal_number: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.signal_number = signal_number
        # A budget stop is a temporary failure (EX_TEMPFAIL).
        self.exit_code = exit_code(signal_number) if signal_number else 75

    @property
    def planned(self) -> bool:
        """Stopped because the segment's budget was spent (a planned pause), not by a signal."""
        return self.signal_number is None


class TrainingDiverged(CarbonPipeError):
    """The training loss became NaN or infinite: the run stops before that state is checkpointed or reported."""


class Interrupted(CarbonPipeError):
    """A wait was stopped by Ctrl-C (exit 130) or SIGTERM (exit 143); what was decided so far has been recorded."""

    def __init__(self, message: str, stopped_by: signal.Signals = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = exit_code(stopped_by)


class MeasurementError(CarbonPipeError):
    """No energy could be measured where a measurement is the whole point (the profile): no counter, no model."""


class CommandFailed(CarbonPipeError):
    """Your own command (`carbon-pipe run`) could not start, or exited with an error: the stage exits with its code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status
