"""`backtest` and `workload`: scheduling policies scored on historical traces, and the jobs files they read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from ..errors import UsageError
from .common import Result, app, print_json, print_progress, run_or_exit


def _parsed(flag: str, parse: Callable, text: Optional[str]):
    """An option parsed by `parse`, None when not given; a bad value is one line naming the flag."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _flagged(flags: dict[str, str], action: Callable[[], Result]) -> Result:
    """Run `action`; an error about a concept (a job's duration) is reported under this command's flag for it."""
    from ..errors import FieldError

    try:
        return action()
    except FieldError as exc:
        raise UsageError(f"{flags.get(exc.field, exc.field)}: {exc.detail}") from None


def _stoppable(action: Callable[[], Result]) -> Result:
    """SIGTERM or SIGINT ends the command as Ctrl-C would, through Python: a file being written is removed (the
    previous one stays), never left behind as a hidden temporary; exit 128 + the signal."""
    from ..signals import exit_code, stop_requests, stopped_by

    with stop_requests(interrupt=True) as received:
        try:
            return action()
        except KeyboardInterrupt:
            stopped = stopped_by(received)
            print(
                f"carbon-pipe: stopped by {stopped.name}; no file was written (an earlier one is kept)", file=sys.stderr
            )
            raise typer.Exit(exit_code(stopped)) from None


BACKTEST_FLAGS = {
    "duration": "--duration",
    "slack": "--slack",
    "every": "--every",
    "minimum chunk": "--min-chunk",
    "policy": "--policy",
    "forecast error": "--forecast-error",
    "forecast error in g/kWh": "--forecast-error-g",
    "threshold": "--threshold",
    "seeds": "--seeds",
    "seed": "--seed",
    "period": "--from/--until",
    "capacity": "--capacity",
}


# The backtest's longer option help, here so that its signature stays a readable list.
BACKTEST_HELP = {
    "trace_format": (
        "canonical, a preset (lets-wait-awhile, electricitymaps-scrape, watttime-caiso, uk-actuals), or auto: the "
        "preset whose columns the file has."
    ),
    "forecasts": "Forecasts as issued at the time (vintages CSV); default: synthetic.",
    "forecast_format": "canonical (issued_at,target_time,carbon_intensity), uk-vintages, watttime-caiso, or auto.",
    "jobs": (
        "Jobs CSV (arrival, duration, deadline or slack; optional id, nominal_start, interruptible) instead of evenly "
        "spaced jobs; see `carbon-pipe workload`."
    ),
    "slack": "Evenly spaced jobs: how long each may wait after it arrives (default 24h).",
    "every": "Evenly spaced jobs: one arrives this often from the period's start (default 1h).",
    "policy": (
        "now, threshold, forecast-window, rolling, forecast-chunks, interruptible, oracle, oracle-interruptible (with "
        "--capacity: fcfs, greedy, joint, joint-hedged, oracle-capacity); repeat or comma-separate. Default: all "
        "(threshold only with --threshold)."
    ),
    "forecast_error": "Synthetic forecast error: noise sd as a fraction of the whole trace's mean (default 0.1).",
    "seeds": "Average over this many noise draws (seed, seed + 1, ...) and report their spread.",
    "min_chunk": "Shortest run of an interrupted job (default: 1h or the trace step, whichever is longer).",
    "since": "Score jobs arriving from this time on (ISO-8601 with zone); earlier data stays history.",
    "until": "Score jobs arriving before this time (evenly spaced jobs also finish by it).",
    "per_job": "Write one CSV row per job and policy: start(s), finish, wait, emissions.",
    "capacity": (
        "Jobs share this many workers: score fcfs, greedy, joint and oracle-capacity instead (joint-hedged on "
        "request; see docs/joint-planning.md)."
    ),
}


@app.command("backtest")
def backtest(
    trace: Path = typer.Option(..., "--trace", help="Historical intensity CSV (see --trace-format)."),
    trace_format: str = typer.Option("auto", help=BACKTEST_HELP["trace_format"]),
    forecasts: Optional[Path] = typer.Option(None, "--forecasts", help=BACKTEST_HELP["forecasts"]),
    forecast_format: str = typer.Option("auto", help=BACKTEST_HELP["forecast_format"]),
    jobs: Optional[Path] = typer.Option(None, "--jobs", help=BACKTEST_HELP["jobs"]),
    duration: Optional[str] = typer.Option(None, help="Evenly spaced jobs: how long each runs (default 4h)."),
    slack: Optional[str] = typer.Option(None, help=BACKTEST_HELP["slack"]),
    every: Optional[str] = typer.Option(None, help=BACKTEST_HELP["every"]),
    policy: list[str] = typer.Option([], "--policy", help=BACKTEST_HELP["policy"]),
    forecast_error: Optional[float] = typer.Option(None, help=BACKTEST_HELP["forecast_error"]),
    forecast_error_g: Optional[float] = typer.Option(None, help="Synthetic forecast error: noise sd in gCO2/kWh."),
    seed: int = typer.Option(0, help="Seed of the synthetic forecast noise (the first, with --seeds)."),
    seeds: int = typer.Option(1, help=BACKTEST_HELP["seeds"]),
    threshold: Optional[float] = typer.Option(None, help="gCO2/kWh for the threshold policy."),
    min_chunk: Optional[str] = typer.Option(None, help=BACKTEST_HELP["min_chunk"]),
    since: Optional[str] = typer.Option(None, "--from", help=BACKTEST_HELP["since"]),
    until: Optional[str] = typer.Option(None, "--until", help=BACKTEST_HELP["until"]),
    per_job: Optional[Path] = typer.Option(None, "--per-job", help=BACKTEST_HELP["per_job"]),
    capacity: Optional[int] = typer.Option(None, "--capacity", help=BACKTEST_HELP["capacity"]),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: one object, or a list for several policies."),
) -> None:
    """Score scheduling policies on a historical trace against the baseline and the perfect-information optimum."""
    from .. import backtest as bt
    from ..backtest.files import run_files
    from ..timeutil import parse_duration, parse_instant

    def prepare():
        setup = bt.Setup(
            policies=tuple(p.strip() for item in policy for p in item.split(",") if p.strip()),
            duration=_parsed("--duration", parse_duration, duration),
            slack=_parsed("--slack", parse_duration, slack),
            every=_parsed("--every", parse_duration, every),
            forecast_error=forecast_error,
            forecast_error_g=forecast_error_g,
            seed=seed,
            seeds=seeds,
            threshold=threshold,
            min_chunk=_parsed("--min-chunk", parse_duration, min_chunk),
            since=_parsed("--from", parse_instant, since),
            until=_parsed("--until", parse_instant, until),
            per_job=per_job is not None,
        )
        if capacity is not None and per_job is not None:
            raise UsageError("--per-job: not written for a backtest with --capacity")
        return run_files(trace, trace_format, setup, forecasts, forecast_format, jobs, per_job, capacity)

    report = run_or_exit(lambda: _stoppable(lambda: _flagged(BACKTEST_FLAGS, prepare)))
    results = report.as_dicts()
    if as_json:
        print_json(results[0] if len(results) == 1 else results)
    elif capacity is not None:
        from ..backtest.capacity_report import capacity_table

        print(capacity_table(report))
    else:
        print(bt.as_table(report))


workload_app = typer.Typer(
    help="Write a jobs file for `backtest --jobs`: periodic jobs, or ad-hoc jobs with calendar deadlines.",
    no_args_is_help=True,
)
app.add_typer(workload_app, name="workload")
OutputOption = typer.Option(..., "--output", "-o", help="The jobs CSV to write.")
SinceOption = typer.Option(..., "--from", help="First instant of the period (ISO-8601 with zone).")
UntilOption = typer.Option(..., "--until", help="End of the period (exclusive).")
TimezoneOption = typer.Option("UTC", help="Time zone of the times of day, days and deadlines (e.g. Europe/Berlin).")
InterruptibleOption = typer.Option(
    False, "--interruptible", help="Let the interruptible policies run these jobs in pieces."
)
WORKLOAD_FLAGS = {
    "at": "--at",
    "every": "--every",
    "duration": "--duration",
    "count": "--count",
    "days": "--days",
    "arrivals": "--arrivals",
    "durations": "--durations",
    "deadline": "--deadline",
    "work hours": "--work-hours",
    "timezone": "--timezone",
    "step": "--step",
    "seed": "--seed",
    "period": "--from/--until",
}


@workload_app.command("periodic")
def workload_periodic(
    output: Path = OutputOption, since: str = SinceOption, until: str = UntilOption,
    duration: str = typer.Option(..., help="How long each job runs."),
    at: Optional[str] = typer.Option(None, help="Nominal start, daily at this local time (HH:MM)."),
    every: Optional[str] = typer.Option(None, help="Or: a nominal start this often from --from."),
    days: str = typer.Option("all", help="With --at: the weekdays (all, Mon-Fri, Mon,Thu)."),
    window: str = typer.Option("0s", help="A job may start this long before or after its nominal time."),
    before: Optional[str] = typer.Option(None, help=(
        "How long before its nominal time a job may start (instead of --window)."
    )),
    after: Optional[str] = typer.Option(None, help=(
        "How long after its nominal time a job may start (instead of --window)."
    )),
    timezone: str = TimezoneOption, interruptible: bool = InterruptibleOption,
) -> None:  # fmt: skip
    """Jobs at a nominal time (nightly at 01:00, or every 6h), each free to move within a window around it."""
    from ..backtest import workload
    from ..backtest.files import write_workload
    from ..timeutil import parse_duration, parse_instant

    def make() -> int:
        spread = _parsed("--window", parse_duration, window)
        spec = workload.Periodic(
            _parsed("--from", parse_instant, since),
            _parsed("--until", parse_instant, until),
            _parsed("--duration", parse_duration, duration),
            at,
            _parsed("--every", parse_duration, every),
            days,
            _parsed("--before", parse_duration, before) if before else spread,
            _parsed("--after", parse_duration, after) if after else spread,
            timezone,
            interruptible,
        )
        return write_workload(output, spec)

    written = run_or_exit(lambda: _stoppable(lambda: _flagged(WORKLOAD_FLAGS, make)))
    print_progress(f"workload: {written} jobs written to {output}")


@workload_app.command("adhoc")
def workload_adhoc(
    output: Path = OutputOption, since: str = SinceOption, until: str = UntilOption,
    count: int = typer.Option(..., help="How many jobs, spread evenly at random over the usable days."),
    days: str = typer.Option("Mon-Fri", help="Weekdays jobs arrive on (all, Mon-Fri, Mon,Thu)."),
    arrivals: str = typer.Option("09:00-17:00", help="Local arrival times, both ends included, every --step."),
    durations: str = typer.Option(..., help=(
        "Shortest-longest duration, both included, every --step (e.g. 4h-89h30min)."
    )),
    step: str = typer.Option("30min", help="Spacing of arrival times and durations."),
    deadline: str = typer.Option(..., help=(
        "finish, 'next workday 09:00', 'next Mon,Thu 09:00', 'next day 09:00', or lets-wait-awhile-next-workday."
    )),
    work_hours: Optional[str] = typer.Option(None, help=(
        "A job finishing on a workday within these hours (09:00-17:00) is due at its finish."
    )),
    grace: str = typer.Option("0s", help="Let every job finish this long after its calendar deadline."),
    timezone: str = TimezoneOption, interruptible: bool = InterruptibleOption,
    seed: int = typer.Option(0, help="Seed of the arrivals and durations."),
) -> None:  # fmt: skip
    """Ad-hoc jobs on workdays with random arrivals and durations, each due by a calendar deadline; seeded."""
    from ..backtest import workload
    from ..backtest.files import write_workload
    from ..timeutil import parse_duration, parse_instant

    def make() -> int:
        shortest, _, longest = durations.partition("-")
        spec = workload.AdHoc(
            _parsed("--from", parse_instant, since),
            _parsed("--until", parse_instant, until),
            count,
            (
                _parsed("--durations", parse_duration, shortest),
                _parsed("--durations", parse_duration, longest or shortest),
            ),
            deadline,
            days,
            arrivals,
            _parsed("--step", parse_duration, step),
            work_hours,
            _parsed("--grace", parse_duration, grace),
            timezone,
            seed,
            interruptible,
        )
        return write_workload(output, spec)

    written = run_or_exit(lambda: _stoppable(lambda: _flagged(WORKLOAD_FLAGS, make)))
    print_progress(f"workload: {written} jobs written to {output}")



@workload_app.command("sweep")
def workload_sweep(
    output: Path = OutputOption, since: str = SinceOption, until: str = UntilOption,
    count: int = typer.Option(..., help="Experiments submitted together each time."),
    at: str = typer.Option(..., help="Local time of day they are submitted (HH:MM)."),
    durations: str = typer.Option(..., help="Shortest-longest run, both included, every --step (e.g. 1h-4h)."),
    deadline: str = typer.Option(..., help="All are due this long after their submission (e.g. 48h)."),
    days: str = typer.Option("all", help="Weekdays they are submitted on (all, Mon-Fri, Mon,Thu)."),
    step: str = typer.Option("30min", help="Spacing of the durations."),
    timezone: str = TimezoneOption, interruptible: bool = InterruptibleOption,
    seed: int = typer.Option(0, help="Seed of the durations."),
) -> None:  # fmt: skip
    """Sweeps: COUNT experiments submitted together at a time of day, with a spread of durations and one deadline."""
    from ..backtest import workload
    from ..backtest.files import write_workload
    from ..timeutil import parse_duration, parse_instant

    def make() -> int:
        shortest, _, longest = durations.partition("-")
        spec = workload.Sweep(
            _parsed("--from", parse_instant, since),
            _parsed("--until", parse_instant, until),
            count,
            at,
            (
                _parsed("--durations", parse_duration, shortest),
                _parsed("--durations", parse_duration, longest or shortest),
            ),
            _parsed("--deadline", parse_duration, deadline),
            days,
            _parsed("--step", parse_duration, step),
            timezone,
            seed,
            interruptible,
        )
        return write_workload(output, spec)

    written = run_or_exit(lambda: _stoppable(lambda: _flagged(WORKLOAD_FLAGS, make)))
    print_progress(f"workload: {written} jobs written to {output}")
