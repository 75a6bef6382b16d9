"""`carbon-pipe run`: your own training command, measured, placed on the clock and paused as `train` is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from ..layout import COMPARISON_JSON, SCHEDULE_METRICS, SUMMARY_METRICS
from .common import ParamsOption, _fail, _handled, _load, _say, app

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names a folder and a metrics file
MAX_RUN_NAME = 100  # stages/train-<name> and metrics/<name>.json, within the 255 bytes a file name may have
# metrics/<name>.json files other stages write: a run of that name would overwrite them
TAKEN = {path.stem.lower() for path in (SCHEDULE_METRICS, COMPARISON_JSON, SUMMARY_METRICS)}


def run_name_problem(name: str) -> Optional[str]:
    """Why `name` cannot name a run (None: it can)."""
    if not RUN_NAME.fullmatch(name):
        return f"{name!r} is not a run name (letters, digits, '.', '_', '-')"
    if len(name) > MAX_RUN_NAME:
        return f"a run name of {len(name)} characters, more than {MAX_RUN_NAME}"
    if name.lower() in TAKEN:
        return f"{name!r} is taken: metrics/{name}.json is another stage's file; choose another name"
    return None


@app.command("run")
def run(
    command: list[str] = typer.Argument(
        ..., metavar="COMMAND", help="Your training command and its arguments, after -- ."
    ),
    params: Path = ParamsOption,
    run_name: str = typer.Option(
        ..., "--run", "-r", help="baseline, optimized (scheduled by wait-for-window), or a name of your own."
    ),
) -> None:
    """Run your own training COMMAND as a run: its process tree's energy over time, emissions on the pipeline
    clock, metrics/<run>.json and stages/train-<run>/ as `train` writes them.

    The command gets $CARBON_PIPE_RUN, $CARBON_PIPE_OUT (its stage folder), $CARBON_PIPE_METRICS (a JSON file for
    its accuracy and loss) and $CARBON_PIPE_CHECKPOINT_DIR (kept until the run finishes). On an interruptible plan
    it gets SIGTERM at each chunk's end (command.grace_period to exit) and is started again at the next: it must
    resume from its own checkpoint. Ctrl-C and SIGTERM are passed on to it; a second one kills it. A failing command
    fails the stage with its exit code, its energy so far reported.
    """
    config = _load(params)
    problem = run_name_problem(run_name)
    if problem is not None:
        _fail(UsageError(f"--run: {problem}"))
    from ..pipeline import run_command

    summary = _handled(lambda: run_command.run_stage(config, run_name, command, _say))
    training, carbon = summary["training_metrics"], summary["carbon_metrics"]
    accuracy = training["final_accuracy"]
    emissions = carbon["total_emissions_kg"]
    _say(
        f"run {run_name}: "
        + ("accuracy not reported" if accuracy is None else f"accuracy {accuracy:.2f} %")
        + f", {training['total_time_seconds']:.1f} s, "
        + ("emissions unknown" if emissions is None else f"{emissions * 1000:.3f} g CO2")
    )
