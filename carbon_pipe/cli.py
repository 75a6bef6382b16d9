"""The `carbon-pipe` command. Each command is thin: load params, call one library function, print a summary.

Heavy imports (torch, codecarbon, pandas) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional, TypeVar

import typer

from .errors import CarbonPipeError, UsageError
from .secrets import redact, redact_data

app = typer.Typer(
    help="Carbon-aware, reproducible PyTorch training with honest, time-resolved emissions accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="The params file (every knob lives there).")
Result = TypeVar("Result")


def _fail(exc: CarbonPipeError) -> NoReturn:
    """One line per error on stderr, and the error's exit code."""
    for line in redact(str(exc)).splitlines() or [exc.__class__.__name__]:
        print(f"carbon-pipe: error: {line}", file=sys.stderr)
    raise typer.Exit(exc.exit_code)


def _run(action: Callable[[], Result]) -> Result:
    """Turn our typed errors into one line on stderr and a non-zero exit."""
    try:
        return action()
    except CarbonPipeError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        print("carbon-pipe: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


def _load(path: Path):
    from .params import load_params

    return _run(lambda: load_params(path))


def _say(line: str) -> None:
    print(redact(line), file=sys.stderr)


def _show(text: str) -> None:
    """Everything a command prints on stdout goes here: redacted, as every line that leaves the process is."""
    print(redact(text))


@app.command("fetch-data")
def fetch_data(params: Path = ParamsOption) -> None:
    """Read data.dataset as uint8 tensors: mnist, fashion-mnist or cifar10 (offline: from the folder
    $CARBON_PIPE_DATA_MIRROR names), an image folder (data.path) or a function's datasets (data.class)."""
    from .pipeline import fetch_data as stage

    config = _load(params)
    manifest = _run(lambda: stage.run_stage(config.data))
    _say(f"fetch-data: {manifest['train_samples']} train / {manifest['test_samples']} test images ({manifest['origin']})")


SourceOption = typer.Option(None, "--source", help="Use these sources instead of carbon.sources (comma-separated chain, e.g. uk,mock).")
RegionOption = typer.Option(None, "--region", help="Region of the first source (uk: national, 1-17 or an outcode; electricitymaps: zone; watttime: region).")
BaseUrlOption = typer.Option(None, "--base-url", help="Base URL of the first source (a mirror, proxy or test server).")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of text.")


def _load_with(path: Path, **overrides: Optional[str]):
    from .params import with_overrides

    config = _load(path)
    return _run(lambda: with_overrides(config, **overrides))


def _print_json(data: dict | list) -> None:
    """Strings redacted before encoding, so numbers stay numbers."""
    import json

    print(json.dumps(redact_data(data), indent=2))


@app.command("intensity")
def intensity(
    params: Path = ParamsOption,
    as_json: bool = JsonOption,
    source: Optional[str] = SourceOption,
    region: Optional[str] = RegionOption,
    base_url: Optional[str] = BaseUrlOption,
) -> None:
    """Show the carbon intensity now and the forecast from the configured sources (with fallback)."""
    from .scheduling import outlook, waiting

    config = _load_with(params, sources=source, region=region, base_url=base_url)
    report = _run(lambda: outlook.intensity_report(config, waiting.make_clock(config).now()))
    _print_json(report) if as_json else _show(outlook.render_intensity(report))


@app.command("plan")
def plan(
    params: Path = ParamsOption,
    as_json: bool = JsonOption,
    source: Optional[str] = SourceOption,
    region: Optional[str] = RegionOption,
    base_url: Optional[str] = BaseUrlOption,
    duration: Optional[str] = typer.Option(None, "--duration", help="Job length instead of scheduler.expected_duration (e.g. 4h, or auto)."),
    slack: Optional[str] = typer.Option(None, "--slack", help="Longest wait instead of scheduler.max_wait (e.g. 12h)."),
) -> None:
    """Plan the job's low-carbon window now, with the planner wait-for-window uses; waits for nothing, writes nothing."""
    from .scheduling import outlook, waiting
    from .scheduling.duration import expected_duration

    config = _load_with(params, sources=source, region=region, base_url=base_url, duration=duration, slack=slack)

    def make_plan() -> dict:
        estimate = expected_duration(config)
        now = waiting.make_clock(config).now()
        ahead = outlook.look_ahead(config, now, now, estimate.seconds)
        return outlook.plan_report(ahead, estimate.source, estimate.basis)

    report = _run(make_plan)
    _print_json(report) if as_json else _show(outlook.render_plan(report))


@app.command("wait-for-window")
def wait_for_window(params: Path = ParamsOption) -> None:
    """Plan the low-carbon window; wait for it on the real clock (re-planning as forecasts update), record it on the simulated one."""
    from .pipeline import wait_for_window as stage

    config = _load(params)
    decision = _run(lambda: stage.run_stage(config, _say))
    fell_back = "".join(f"; fell back: {failure['error']}" for failure in decision["source_failures"])
    _say(
        f"wait-for-window: {decision['source']} {decision['region']}, {decision['mode']} {decision['rule']}, "
        f"{decision['clock']} clock: start {decision['start']} after {decision['wait_seconds'] / 3600:.2f} h "
        f"in {len(decision['chunks'])} chunk(s) at {decision['expected_mean_intensity_g_per_kwh']:.1f} g/kWh "
        f"(now {decision['now_mean_intensity_g_per_kwh']:.1f}; {decision['expected_saving_vs_now_pct']:.1f} % lower){fell_back}"
    )


@app.command("train")
def train(
    params: Path = ParamsOption,
    run: Optional[str] = typer.Option(
        None, "--run", "-r", help="baseline or optimized (default: optimized, the carbon-aware configuration)."
    ),
) -> None:
    """Train one configuration with energy tracking; write the model, logs and metrics/<run>.json.

    Resumes automatically from the checkpoint a stopped or killed run of the same configuration left in
    stages/train-<run>/resume/. SIGTERM or SIGINT checkpoint and stop it. Runs under `torchrun` as DDP.
    With an interruptible plan the optimized run trains in its chunks and pauses between them.
    """
    config = _load(params)
    run_name = run or "optimized"
    if run_name not in ("baseline", "optimized"):
        _fail(UsageError(f"--run: expected baseline or optimized, got {run_name!r}"))
    from .pipeline import train as stage

    summary = _run(lambda: stage.run_stage(config, run_name, _say))
    if summary is None:  # a torchrun rank other than 0: rank 0 reports
        return
    carbon = summary["carbon_metrics"]
    emissions = "unknown" if carbon["total_emissions_kg"] is None else f"{carbon['total_emissions_kg'] * 1000:.3f} g CO2"
    _say(
        f"train {run_name}: accuracy {summary['training_metrics']['final_accuracy']:.2f} %, "
        f"{summary['training_metrics']['total_time_seconds']:.1f} s, {emissions}, precision {summary['precision']}"
    )


@app.command("compare")
def compare(params: Path = ParamsOption) -> None:
    """Write metrics/comparison.json, metrics/summary.json and stages/compare/ (report.md, charts, plot data)."""
    _load(params)  # validated for consistency with the other stages; compare needs only artifacts
    from .pipeline import compare as stage

    result = _run(stage.run_stage)
    if result["comparable"]:
        savings, split = result["carbon_savings"], result["decomposition"]
        _say(
            f"compare: {savings['reduction_percentage']:.1f} % less CO2 "
            f"(schedule {split['schedule_effect_kg'] * 1000:.3f} g + configuration {split['configuration_effect_kg'] * 1000:.3f} g)"
        )
    else:
        _say(f"compare: not comparable: {result['not_comparable_reason']}")


@app.command("profile")
def profile(params: Path = ParamsOption, as_json: bool = JsonOption) -> None:
    """Energy and time per training sample of baseline and optimized, measured paired, with 95 % intervals.

    Short alternating bursts of both configurations in one process (the `profile` params section), on
    stages/fetch-data/dataset.pt, with the most direct energy counter there is (NVML, RAPL, else CodeCarbon's model).
    """
    from .profiling import measure, render

    config = _load(params)
    result = _run(lambda: measure.run_profile(config))
    _print_json(render.flat_summary(result)) if as_json else _show(render.render_text(result))


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
    from .errors import FieldError

    try:
        return action()
    except FieldError as exc:
        raise UsageError(f"{flags.get(exc.field, exc.field)}: {exc.detail}") from None


BACKTEST_FLAGS = {
    "duration": "--duration", "slack": "--slack", "every": "--every", "minimum chunk": "--min-chunk", "policy": "--policy",
    "forecast error": "--forecast-error", "forecast error in g/kWh": "--forecast-error-g", "threshold": "--threshold", "seeds": "--seeds",
}  # fmt: skip


@app.command("backtest")
def backtest(
    trace: Path = typer.Option(..., "--trace", help="Historical intensity CSV (see --trace-format)."),
    trace_format: str = typer.Option("auto", help="canonical, a preset (lets-wait-awhile, electricitymaps-scrape, watttime-caiso, uk-actuals), or auto: the preset whose columns the file has."),
    forecasts: Optional[Path] = typer.Option(None, "--forecasts", help="Forecasts as issued at the time (vintages CSV); default: synthetic."),
    forecast_format: str = typer.Option("auto", help="canonical (issued_at,target_time,carbon_intensity), uk-vintages, watttime-caiso, or auto."),
    jobs: Optional[Path] = typer.Option(None, "--jobs", help="Jobs CSV (arrival, duration, deadline or slack; optional id, nominal_start, interruptible) instead of evenly spaced jobs; see `carbon-pipe workload`."),
    duration: Optional[str] = typer.Option(None, help="Evenly spaced jobs: how long each runs (default 4h)."),
    slack: Optional[str] = typer.Option(None, help="Evenly spaced jobs: how long each may wait after it arrives (default 24h)."),
    every: Optional[str] = typer.Option(None, help="Evenly spaced jobs: one arrives this often from the period's start (default 1h)."),
    policy: list[str] = typer.Option(
        [], "--policy", help="now, threshold, forecast-window, rolling, forecast-chunks, interruptible, oracle, oracle-interruptible; repeat or comma-separate. Default: all (threshold only with --threshold)."
    ),
    forecast_error: Optional[float] = typer.Option(None, help="Synthetic forecast error: noise sd as a fraction of the whole trace's mean (default 0.1)."),
    forecast_error_g: Optional[float] = typer.Option(None, help="Synthetic forecast error: noise sd in gCO2/kWh."),
    seed: int = typer.Option(0, help="Seed of the synthetic forecast noise (the first, with --seeds)."),
    seeds: int = typer.Option(1, help="Average over this many noise draws (seed, seed + 1, ...) and report their spread."),
    threshold: Optional[float] = typer.Option(None, help="gCO2/kWh for the threshold policy."),
    min_chunk: Optional[str] = typer.Option(None, help="Shortest run of an interrupted job (default: 1h or the trace step, whichever is longer)."),
    since: Optional[str] = typer.Option(None, "--from", help="Score jobs arriving from this time on (ISO-8601 with zone); earlier data stays history."),
    until: Optional[str] = typer.Option(None, "--until", help="Score jobs arriving before this time (evenly spaced jobs also finish by it)."),
    per_job: Optional[Path] = typer.Option(None, "--per-job", help="Write one CSV row per job and policy: start(s), finish, wait, emissions."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: one object, or a list for several policies."),
) -> None:
    """Score scheduling policies on a historical trace against the baseline and the perfect-information optimum."""
    import json

    from . import backtest as bt
    from .backtest.files import run_files
    from .timeutil import parse_duration, parse_instant

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
        return run_files(trace, trace_format, setup, forecasts, forecast_format, jobs, per_job)

    report = _run(lambda: _flagged(BACKTEST_FLAGS, prepare))
    results = report.as_dicts()
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2) if as_json else bt.as_table(report))


workload_app = typer.Typer(help="Write a jobs file for `backtest --jobs`: periodic jobs, or ad-hoc jobs with calendar deadlines.", no_args_is_help=True)
app.add_typer(workload_app, name="workload")
OutputOption = typer.Option(..., "--output", "-o", help="The jobs CSV to write.")
SinceOption = typer.Option(..., "--from", help="First instant of the period (ISO-8601 with zone).")
UntilOption = typer.Option(..., "--until", help="End of the period (exclusive).")
TimezoneOption = typer.Option("UTC", help="Time zone of the times of day, days and deadlines (e.g. Europe/Berlin).")
InterruptibleOption = typer.Option(False, "--interruptible", help="Let the interruptible policies run these jobs in pieces.")
WORKLOAD_FLAGS = {
    "at": "--at", "every": "--every", "duration": "--duration", "count": "--count", "days": "--days", "arrivals": "--arrivals",
    "durations": "--durations", "deadline": "--deadline", "work hours": "--work-hours", "timezone": "--timezone",
}  # fmt: skip


@workload_app.command("periodic")
def workload_periodic(
    output: Path = OutputOption, since: str = SinceOption, until: str = UntilOption,
    duration: str = typer.Option(..., help="How long each job runs."),
    at: Optional[str] = typer.Option(None, help="Nominal start, daily at this local time (HH:MM)."),
    every: Optional[str] = typer.Option(None, help="Or: a nominal start this often from --from."),
    days: str = typer.Option("all", help="With --at: the weekdays (all, Mon-Fri, Mon,Thu)."),
    window: str = typer.Option("0s", help="A job may start this long before or after its nominal time."),
    before: Optional[str] = typer.Option(None, help="How long before its nominal time a job may start (instead of --window)."),
    after: Optional[str] = typer.Option(None, help="How long after its nominal time a job may start (instead of --window)."),
    timezone: str = TimezoneOption, interruptible: bool = InterruptibleOption,
) -> None:  # fmt: skip
    """Jobs at a nominal time (nightly at 01:00, or every 6h), each free to move within a window around it."""
    from .backtest import workload
    from .backtest.files import write_workload
    from .timeutil import parse_duration, parse_instant

    def make() -> int:
        spread = _parsed("--window", parse_duration, window)
        spec = workload.Periodic(
            _parsed("--from", parse_instant, since), _parsed("--until", parse_instant, until), _parsed("--duration", parse_duration, duration),
            at, _parsed("--every", parse_duration, every), days, _parsed("--before", parse_duration, before) if before else spread,
            _parsed("--after", parse_duration, after) if after else spread, timezone, interruptible,
        )  # fmt: skip
        return write_workload(output, spec)

    _say(f"workload: {_run(lambda: _flagged(WORKLOAD_FLAGS, make))} jobs written to {output}")


@workload_app.command("adhoc")
def workload_adhoc(
    output: Path = OutputOption, since: str = SinceOption, until: str = UntilOption,
    count: int = typer.Option(..., help="How many jobs, spread evenly at random over the usable days."),
    days: str = typer.Option("Mon-Fri", help="Weekdays jobs arrive on (all, Mon-Fri, Mon,Thu)."),
    arrivals: str = typer.Option("09:00-17:00", help="Local arrival times, both ends included, every --step."),
    durations: str = typer.Option(..., help="Shortest-longest duration, both included, every --step (e.g. 4h-89h30min)."),
    step: str = typer.Option("30min", help="Spacing of arrival times and durations."),
    deadline: str = typer.Option(..., help="finish, 'next workday 09:00', 'next Mon,Thu 09:00', 'next day 09:00', or lets-wait-awhile-next-workday."),
    work_hours: Optional[str] = typer.Option(None, help="A job finishing on a workday within these hours (09:00-17:00) is due at its finish."),
    grace: str = typer.Option("0s", help="Let every job finish this long after its calendar deadline."),
    timezone: str = TimezoneOption, interruptible: bool = InterruptibleOption,
    seed: int = typer.Option(0, help="Seed of the arrivals and durations."),
) -> None:  # fmt: skip
    """Ad-hoc jobs on workdays with random arrivals and durations, each due by a calendar deadline; seeded."""
    from .backtest import workload
    from .backtest.files import write_workload
    from .timeutil import parse_duration, parse_instant

    def make() -> int:
        shortest, _, longest = durations.partition("-")
        spec = workload.AdHoc(
            _parsed("--from", parse_instant, since), _parsed("--until", parse_instant, until), count,
            (_parsed("--durations", parse_duration, shortest), _parsed("--durations", parse_duration, longest or shortest)),
            deadline, days, arrivals, _parsed("--step", parse_duration, step), work_hours, _parsed("--grace", parse_duration, grace),
            timezone, seed, interruptible,
        )  # fmt: skip
        return write_workload(output, spec)

    _say(f"workload: {_run(lambda: _flagged(WORKLOAD_FLAGS, make))} jobs written to {output}")


if __name__ == "__main__":
    app()
