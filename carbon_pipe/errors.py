"""Typed errors. The CLI turns each into one line on stderr and a non-zero exit."""


class CarbonPipeError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(CarbonPipeError):
    """Bad input from the user: params, options, files they pointed us at."""

    exit_code = 2


class ParamsError(UsageError):
    """params.yaml is unreadable or does not match the schema."""


class DataError(UsageError):
    """The dataset mirror is missing or a file in it is corrupt."""


class SourceError(CarbonPipeError):
    """A carbon-intensity source failed (network, HTTP status, payload shape)."""


class ArtifactError(CarbonPipeError):
    """An artifact an earlier stage should have written is missing or malformed."""


class Interrupted(CarbonPipeError):
    """The user pressed Ctrl-C; what was decided so far has been recorded."""

    exit_code = 130
