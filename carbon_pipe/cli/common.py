"""What every command shares: the Typer app, params loading, and one redacted line per error or result."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional, TypeVar

import typer
from typer.core import TyperGroup

from ..errors import ArtifactError, CarbonPipeError, UsageError
from ..secrets import redact
from ..signals import exit_code

# How a loader, the C library and torch's allocator say it
OUT_OF_MEMORY = ("failed to map segment", "cannot allocate memory", "can't allocate memory", "out of memory")


def _out_of_memory(exc: BaseException) -> Optional[str]:
    """The line for a lack of memory (None: `exc` is something else): a MemoryError, or a library (torch's shared
    objects) that cannot be mapped into memory, typically under a `ulimit -v`."""
    text = (str(exc).splitlines() or [""])[0]
    if not (isinstance(exc, MemoryError) or any(sign in text.lower() for sign in OUT_OF_MEMORY)):
        return None
    what = f"cannot load a library ({text})" if isinstance(exc, ImportError) else f"out of memory ({text})"
    return f"{what}: too little memory for this process (a `ulimit -v` or cgroup limit?): raise the limit, run again"


class _Commands(TyperGroup):
    """Every command, with a lack of memory (even while importing torch) as one line and exit 1, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (MemoryError, ImportError, OSError, RuntimeError) as exc:  # RuntimeError: torch's allocator
            line = _out_of_memory(exc)
            if line is None:
                raise
            print(f"carbon-pipe: error: {redact(line)}", file=sys.stderr)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Commands,
    help="Carbon-aware, reproducible PyTorch training with honest, time-resolved emissions accounting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from .. import __version__

        print(f"carbon-pipe {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Carbon-aware, reproducible PyTorch training with honest, time-resolved emissions accounting."""
    wait_passively()


def wait_passively() -> None:
    """OpenMP threads (torch's, a user's command's) sleep rather than spin while they wait, unless the user chose.

    Spinning beside a busy neighbour is CPU time the job is charged for and does no work with: with it, the energy
    charged to the default baseline followed its wall time by half; without, not at all, and it trained no slower
    (docs/measurement.md). It must be in the environment before torch loads OpenMP, hence here, before any command runs.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="The params file (every knob lives there).")
# `plan` and `intensity` stand alone: without a params file they take the schema's defaults (the real clock).
LookParamsOption = typer.Option(
    None, "--params", "-p", help="The params file (default: ./params.yaml if there is one, else the defaults)."
)
Result = TypeVar("Result")


def exit_with(exc: CarbonPipeError) -> NoReturn:
    """One line per error on stderr, and the error's exit code."""
    for line in redact(str(exc)).splitlines() or [exc.__class__.__name__]:
        print(f"carbon-pipe: error: {line}", file=sys.stderr)
    raise typer.Exit(exc.exit_code)


def run_or_exit(action: Callable[[], Result]) -> Result:
    """Turn our typed errors into one line on stderr and a non-zero exit."""
    try:
        return action()
    except CarbonPipeError as exc:
        exit_with(exc)
    except KeyboardInterrupt:
        print("carbon-pipe: interrupted", file=sys.stderr)
        raise typer.Exit(exit_code(signal.SIGINT)) from None
    except SystemExit as exc:  # carbon-pipe never exits from inside a stage: your code (model.class, ...) did
        exit_with(CarbonPipeError(f"your code called sys.exit({exc.code!r}) inside the stage, which was not completed"))


def load_params_or_exit(path: Path):
    from ..config.params import load_params

    return run_or_exit(lambda: load_params(path))


TRAIN_EXTRA = (
    "pip install 'carbon-pipe[train]' (CPU-only: pip install torch torchvision "
    "--index-url https://download.pytorch.org/whl/cpu first)"
)


def require_torch(command: str) -> None:
    """The built-in trainer's commands need the `train` extra; without it, one line saying what to install. A torch
    that is installed but cannot load for lack of memory is not a missing extra: that error goes on to its own line.
    torchvision is looked up, not imported: its models take seconds of CPU to import and only fetch-data uses it."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        if _out_of_memory(exc) is not None:
            raise
        exit_with(UsageError(f"{command} is the built-in trainer's and needs {exc.name or 'torch'}: {TRAIN_EXTRA}"))
    if importlib.util.find_spec("torchvision") is None:
        exit_with(UsageError(f"{command} is the built-in trainer's and needs torchvision: {TRAIN_EXTRA}"))


def print_progress(line: str) -> None:
    """A command's progress and notes go to stderr, one redacted line each: stdout holds only its result."""
    print(redact(line), file=sys.stderr)


def print_result(text: str) -> None:
    """Everything a command prints on stdout goes here: redacted, as every line that leaves the process is."""
    print(redact(text))


JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of text.")


def load_params_with_overrides(path: Optional[Path], **overrides: Optional[str]):
    """The params file (or, with `path` None and no ./params.yaml, the defaults) with command-line overrides."""
    from ..config.params import params_or_defaults, with_overrides

    config = run_or_exit(lambda: params_or_defaults(path))
    return run_or_exit(lambda: with_overrides(config, **overrides))


def print_json(data: dict | list) -> None:
    """Strings redacted before encoding, so numbers stay numbers; never a NaN or an Infinity (one line instead)."""
    from ..artifacts import json_text

    try:
        text = json_text(data)
    except ValueError as exc:
        exit_with(ArtifactError(f"cannot print the answer as JSON: {exc}"))
    print(text)
