"""`carbon-pipe run`: your own training command, measured, placed on the clock and paused as `train` is."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand

from ..errors import UsageError
from ..layout import COMPARISON_JSON, SCHEDULE_METRICS, SUMMARY_METRICS
from .common import LookParamsOption, app, exit_with, load_params_with_overrides, print_progress, run_or_exit

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


class CommandAfterDashes(TyperCommand):
    """`run` takes the command after `--`: an option of `run`'s own it does not know, before any `--`, is most
    likely the command's, so the error says where it goes instead of only that there is no such option."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        known = {name for param in self.get_params(ctx) for name in (*param.opts, *param.secondary_opts)}
        for word in args:
            if word == "--":
                break
            if word.startswith("-") and word.split("=")[0] not in known:
                print(
                    f"carbon-pipe: error: run has no option {word}: your command's own options go after `--`, "
                    f"as in carbon-pipe run --run NAME -- python train.py {word} ...",
                    file=sys.stderr,
                )
                raise typer.Exit(2)
        return super().parse_args(ctx, args)


@app.command("run", cls=CommandAfterDashes)
def run(
    command: list[str] = typer.Argument(
        ..., metavar="COMMAND", help="Your training command and its arguments, after -- ."
    ),
    params: Optional[Path] = LookParamsOption,
    run_name: str = typer.Option(
        ..., "--run", "-r", help="baseline, optimized (scheduled by wait-for-window), or a name of your own."
    ),
    unplanned: str = typer.Option(
        "now", "--unplanned", help="Without a plan here (no wait-for-window has run, no dvc.yaml): start now, or "
        "plan (wait for the low-carbon window first, on the params' clock)."
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
    config = load_params_with_overrides(params)
    problem = run_name_problem(run_name)
    if problem is not None:
        exit_with(UsageError(f"--run: {problem}"))
    if unplanned not in ("now", "plan"):
        exit_with(UsageError(f"--unplanned: expected now or plan, got {unplanned!r}"))
    from ..layout import HORIZON_JSON
    from ..pipeline import run_command, wait_for_window

    planned_here = not HORIZON_JSON.is_file() and not Path("dvc.yaml").is_file()
    if planned_here:
        print_progress(
            f"run: no plan here ({HORIZON_JSON} is missing and there is no dvc.yaml): "
            + ("planning the low-carbon window now" if unplanned == "plan" else "starting now (--unplanned plan waits "
               "for the low-carbon window)")
        )
        run_or_exit(lambda: wait_for_window.run_stage(run_command.planning_params(config, unplanned), print_progress))
    summary = run_or_exit(
        lambda: run_command.run_stage(config, run_name, command, print_progress, planned_here=planned_here)
    )
    training, carbon = summary.training_metrics, summary.carbon_metrics
    accuracy, emissions = training.final_accuracy, carbon.total_emissions_kg
    print_progress(
        f"run {run_name}: "
        + ("accuracy not reported" if accuracy is None else f"accuracy {accuracy:.2f} %")
        + f", {training.total_time_seconds:.1f} s, "
        + ("emissions unknown" if emissions is None else f"{emissions * 1000:.3f} g CO2")
    )
