"""`carbon-pipe queue`: many DVC experiments planned jointly into low-carbon windows under K workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import (
    JsonOption,
    ParamsOption,
    app,
    exit_with,
    load_params_or_exit,
    print_json,
    print_progress,
    print_result,
    run_or_exit,
)

queue_app = typer.Typer(help="Queue DVC experiments, plan them together into low-carbon windows, run them locally "
                        "or on SLURM.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")

WorkersOption = typer.Option(1, "--workers", "-K", help="At most this many experiments run at once.")
PolicyOption = typer.Option("joint", "--policy", help="joint: least expected emissions; joint-hedged: each entry "
                            "stays at its first-come start unless a move saves more than --forecast-error could undo.")
ForecastErrorOption = typer.Option(10.0, "--forecast-error", help="joint-hedged: how far the forecast may be off, "
                                   "in % of each point.")
StepOption = typer.Option(None, "--step", help="The planning grid (e.g. 15min); default: the forecast's own step, "
                          "at least 15 min.")


def _seconds(value: Optional[str], option: str) -> Optional[float]:
    from ..timeutil import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        exit_with(UsageError(f"{option}: {exc}"))


def load_queue_params(params: Path):
    """params.yaml, read while no experiment the queue launched is rewriting it (queue/store.py)."""
    from ..queue.store import dvc_workspace_settled

    with dvc_workspace_settled():
        return load_params_or_exit(params)


def _instant(value: Optional[str], option: str) -> Optional[float]:
    from ..timeutil import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        exit_with(UsageError(f"{option}: {exc}"))


@queue_app.command("add")
def add(
    overrides: list[str] = typer.Option([], "--set-param", "-S", help="key=value of params.yaml; key=a,b,c queues "
                                        "one entry per value, several such -S a grid (as dvc exp run --queue)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="The entry's (and experiment's) name; a grid "
                                       "gets NAME-1, NAME-2, ..."),
    duration: str = typer.Option("auto", "--duration", help="Expected run time, or auto: the last measured run "
                                 "of this configuration, else scheduler.fallback_duration."),
    power: Optional[float] = typer.Option(None, "--power", help="Expected mean power in kW (default: measured, "
                                          "else 0.2)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help="Finish by this time (ISO-8601 with a zone)."),
    slack: Optional[str] = typer.Option(None, "--slack", help="Finish within this long of now (e.g. 12h). Default: "
                                        "scheduler.max_wait + the duration."),
    arrival: Optional[str] = typer.Option(None, "--arrival", help="When the entry counts as queued (default: now); "
                                          "for planning against a past trace."),
    interruptible: bool = typer.Option(False, "--interruptible", help="Plan it in chunks (none shorter than "
                                       "scheduler.min_chunk): queue run pauses it between them and gives the pauses "
                                       "to other entries; on SLURM each chunk is a job of its own."),
    params: Path = ParamsOption,
) -> None:
    """Queue one DVC experiment per combination of the -S values. Every entry is checked before any is added."""
    from ..queue.entries import add_entries
    from ..queue.store import dvc_workspace_settled

    moment = _instant(arrival, "--arrival") or time.time()
    with dvc_workspace_settled():
        load_params_or_exit(params)
        added = run_or_exit(lambda: add_entries(
            params, overrides, name, duration, power, _instant(deadline, "--deadline"), _seconds(slack, "--slack"),
            moment, interruptible,
        ))
    for entry in added:
        print_progress(f"queued {entry.name}: {entry.duration:.0f} s ({entry.duration_basis}), {entry.power_kw:g} kW, "
             f"deadline in {(entry.deadline - entry.arrival) / 3600:.2f} h"
             + ("" if entry.chunk_floor is None else f", interruptible (chunks of at least {entry.chunk_floor:.0f} s)"))


@queue_app.command("plan")
def plan(
    workers: int = WorkersOption,
    png: Path = typer.Option(Path(".dvc/tmp/carbon-pipe-queue/plan.png"), "--png", help="Where to draw the plan "
                             "(a Gantt over the forecast, beside first-come)."),
    now: Optional[str] = typer.Option(None, "--now", help="Plan as if now were this time (default: the clock)."),
    step: Optional[str] = StepOption,
    policy: str = PolicyOption,
    forecast_error: float = ForecastErrorOption,
    as_json: bool = JsonOption,
    params: Path = ParamsOption,
) -> None:
    """Plan the queued entries together (at most K at once) and show the plan beside first-come and each entry's own
    best window. Nothing is started."""
    from ..queue import planning
    from ..queue.gantt import write_gantt
    from ..queue.store import read_queue

    how = run_or_exit(lambda: planning.QueuePolicy(policy, forecast_error))
    config = load_queue_params(params)
    run_or_exit(lambda: planning.check_workers(workers))
    moment = _instant(now, "--now") or time.time()
    entries = run_or_exit(read_queue).in_state("queued")
    if not entries:
        exit_with(UsageError("queue plan: no queued entries (carbon-pipe queue add -S key=value first)"))
    series = run_or_exit(lambda: planning.forecast(config, entries, moment))
    comparison = run_or_exit(lambda: planning.compare_plans(
        entries, series, workers, moment, _seconds(step, "--step"), how
    ))
    write_gantt(png, series, comparison.joint, comparison.first_come, workers)
    summary = planning.plan_summary(comparison, workers, f"{series.source} {series.region}", how)
    if as_json:
        print_json({**summary, "png": str(png)})
    else:
        print_result(planning.render_table(summary) + f"\nplot: {png}")


@queue_app.command("run")
def run(
    workers: int = WorkersOption,
    replan_interval: Optional[str] = typer.Option(None, "--replan-interval", help="Re-fetch and re-plan the entries "
                                                  "not started this often (default: scheduler.replan_interval)."),
    step: Optional[str] = StepOption,
    policy: str = PolicyOption,
    forecast_error: float = ForecastErrorOption,
    params: Path = ParamsOption,
) -> None:
    """Follow the plan on the real clock: each entry starts in its slot as `dvc exp run --temp`, never more than K
    at once. Safe to stop and run again: nothing starts twice, nothing is lost."""
    from ..queue.local import run_queue
    from ..queue.planning import QueuePolicy

    how = run_or_exit(lambda: QueuePolicy(policy, forecast_error))
    config = load_queue_params(params)
    every, grid = _seconds(replan_interval, "--replan-interval"), _seconds(step, "--step")
    queue = run_or_exit(lambda: run_queue(config, workers, print_progress, every, grid, policy=how))
    done, failed = queue.in_state("done"), queue.in_state("failed")
    print_progress(f"queue: {len(done)} done, {len(failed)} failed" + "".join(f"; {e.name}: {e.note}" for e in failed))
    if failed:
        raise typer.Exit(1)


@queue_app.command("submit")
def submit(
    slurm: bool = typer.Option(False, "--slurm", help="Hand each entry to SLURM (sbatch --begin at its slot; an "
                               "interruptible entry's chunks each at theirs)."),
    workers: int = WorkersOption,
    step: Optional[str] = StepOption,
    policy: str = PolicyOption,
    forecast_error: float = ForecastErrorOption,
    params: Path = ParamsOption,
) -> None:
    """Plan the entries not started and submit each to SLURM at its slot, in its own clone of the committed project;
    again later, it re-plans and moves the jobs still pending. Results come back as DVC experiments."""
    from ..queue import slurm as cluster
    from ..queue.planning import QueuePolicy

    if not slurm:
        exit_with(UsageError("queue submit: only --slurm is supported (queue run runs the queue here)"))
    how = run_or_exit(lambda: QueuePolicy(policy, forecast_error))
    config = load_queue_params(params)
    step_seconds = _seconds(step, "--step")
    run_or_exit(lambda: cluster.submit(config, workers, Path.cwd(), print_progress, time.time(), step_seconds, how))


@queue_app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """Every entry: its state, planned slot, real start (SLURM's, for submitted jobs) and outcome."""
    from ..queue import slurm as cluster

    records = run_or_exit(lambda: cluster.status_records(time.time()))
    print_json(records) if as_json else print_result(cluster.render_status(records))


@queue_app.command("cancel")
def cancel(names: list[str] = typer.Argument(..., help="Entries to cancel (queued, or pending on SLURM).")) -> None:
    """Cancel entries not started yet (a SLURM job still pending is scancel'ed); a finished one stays recorded."""
    from ..queue.slurm import cancel_entries

    for entry in run_or_exit(lambda: cancel_entries(names)):
        print_progress(f"queue: cancelled {entry.name}")
