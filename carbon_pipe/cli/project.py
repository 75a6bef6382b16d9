"""Bringing carbon-pipe into a project of your own: `init`, `params --defaults` and `experiments`."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import JsonOption, app, exit_with, print_json, print_progress, print_result, run_or_exit

KINDS = {"1": "dataset", "2": "folder", "3": "command"}


def _ask(dataset: str, images: Optional[str], command: Optional[str]) -> tuple[str, Optional[str], Optional[str]]:
    """The kind of project, asked in a terminal: the options given are the answers' defaults."""
    if not sys.stdin.isatty():
        exit_with(UsageError("--ask: prompts need a terminal; give --dataset, --images or --command instead"))
    current = "3" if command else "2" if images else "1"
    kind = typer.prompt(
        "Train with: 1 the built-in trainer on a torchvision set, 2 ... on an image folder, 3 your own command",
        default=current,
        type=typer.Choice(list(KINDS)),
    )
    if KINDS[kind] == "command":
        return dataset, None, typer.prompt("Your training command", default=command or "python train.py")
    if KINDS[kind] == "folder":
        return dataset, typer.prompt("The image folder", default=images or "images"), None
    return typer.prompt("Dataset (mnist, fashion-mnist, cifar10)", default=dataset), None, None


@app.command("init")
def init(
    command: Optional[str] = typer.Option(
        None, "--command", "-c", help="Your own training command (stages run it with `carbon-pipe run --`)."
    ),
    images: Optional[str] = typer.Option(None, "--images", help="The built-in trainer on this image folder."),
    dataset: str = typer.Option("mnist", "--dataset", help="The built-in trainer on this torchvision set."),
    source: str = typer.Option("mock", "--source", help="carbon.sources, comma-separated (e.g. uk,mock)."),
    clock: str = typer.Option(
        "simulated", "--clock", help="simulated: waits recorded, not slept (dvc repro runs at once) | real."
    ),
    duration: Optional[str] = typer.Option(
        None, "--duration", help="scheduler.expected_duration: how long a training run takes (e.g. 20min)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite dvc.yaml, params.yaml and CARBON_PIPE.md."),
    ask: bool = typer.Option(False, "--ask", help="Ask for the kind of project (in a terminal)."),
) -> None:
    """Set up carbon-pipe in this git repository: dvc.yaml, a params.yaml of only what differs from the defaults,
    CARBON_PIPE.md (and `dvc init` when DVC is not set up yet). Asks nothing unless --ask."""
    from ..scaffold.project import Setup, init_project

    if ask:
        dataset, images, command = _ask(dataset, images, command)
    if command is not None and images is not None:
        exit_with(UsageError("--command and --images: choose one (your own command prepares its own data)"))
    if clock not in ("simulated", "real"):
        exit_with(UsageError(f"--clock: expected simulated or real, got {clock!r}"))
    setup = Setup(
        dataset=dataset, images=images, command=command, clock=clock, duration=duration,
        sources=tuple(name.strip() for name in source.split(",")),
        now=math.floor(time.time() / 3600) * 3600.0,  # the hour init ran in: a round "now" for the simulated clock
    )
    written = run_or_exit(lambda: init_project(Path.cwd(), setup, force, print_progress))
    print_progress(f"init: wrote {', '.join(path.name for path in written)} ({setup.kind}); next: dvc repro")


@app.command("params")
def params(
    defaults: bool = typer.Option(False, "--defaults", help="Print every key with its default (a full params file)."),
) -> None:
    """Print the full params file of carbon-pipe's defaults: each key a params.yaml may hold."""
    if not defaults:
        exit_with(UsageError("params: say what to print: --defaults"))
    from ..scaffold.project import defaults_yaml

    print_result(defaults_yaml().rstrip("\n"))


@app.command("experiments")
def experiments(
    markdown: bool = typer.Option(False, "--md", help="A markdown table (for a pull request or a job summary)."),
    all_commits: bool = typer.Option(False, "--all-commits", "-A", help="Every commit's experiments (dvc's -A)."),
    as_json: bool = JsonOption,
) -> None:
    """The project's DVC experiments side by side: the params that differ, CO2, the schedule and configuration
    effects with their 95 % intervals, accuracy, time, wait and energy (from `dvc exp show --json`)."""
    from ..scaffold import experiments as view

    shown = run_or_exit(lambda: view.exp_show(["-A"] if all_commits else []))
    rows = view.experiments(shown)
    if as_json:
        print_json([
            {"name": row.name, "params": row.params, "summary": row.summary and row.summary.to_json()} for row in rows
        ])
        return
    print_result(view.render(*view.table(rows), markdown=markdown))
