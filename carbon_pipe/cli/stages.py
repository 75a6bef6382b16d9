"""The pipeline's commands (one per DVC stage), and `intensity`, `plan` and `profile`, which look without writing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError
from .common import (
    JsonOption,
    LookParamsOption,
    ParamsOption,
    app,
    exit_with,
    load_params_or_exit,
    load_params_with_overrides,
    print_json,
    print_progress,
    print_result,
    require_torch,
    run_or_exit,
)


@app.command("fetch-data")
def fetch_data(params: Path = ParamsOption) -> None:
    """Read data.dataset as uint8 tensors: mnist, fashion-mnist or cifar10 (offline: from the folder
    $CARBON_PIPE_DATA_MIRROR names), an image folder (data.path) or a function's datasets (data.class)."""
    require_torch("fetch-data")
    from ..pipeline import fetch_data as stage

    config = load_params_or_exit(params)
    manifest = run_or_exit(lambda: stage.run_stage(config.data))
    print_progress(
        f"fetch-data: {manifest.train_samples} train / {manifest.test_samples} test images ({manifest.origin})"
    )


SourceOption = typer.Option(
    None, "--source", help="Use these sources instead of carbon.sources (comma-separated chain, e.g. uk,mock)."
)
RegionOption = typer.Option(
    None,
    "--region",
    help="Region of the first source (uk: national, 1-17 or an outcode; electricitymaps: zone; watttime: region).",
)
BaseUrlOption = typer.Option(None, "--base-url", help="Base URL of the first source (a mirror, proxy or test server).")
ClockOption = typer.Option(
    None, "--clock", help="real: now is the wall clock; simulated: now is scheduler.now (instead of scheduler.clock)."
)
NowOption = typer.Option(
    None, "--now", help="Look from this time (ISO-8601 with a zone) on the simulated clock, instead of scheduler.now."
)


TraceOption = typer.Option(
    None, "--trace", help="A trace CSV as the source (its format told by its columns, as backtest tells it)."
)


def _replayed(config, reach: float):
    """On a trace of the past, the last moment it covers (one line says so); the clock's now otherwise."""
    from ..scheduling import outlook
    from ..scheduling.clock import make_clock

    moved, note = run_or_exit(lambda: outlook.replayed(config, make_clock(config).now(), reach))
    if note is not None:
        print_progress(f"carbon-pipe: note: {note}")
    return moved, make_clock(moved).now()


@app.command("intensity")
def intensity(
    params: Optional[Path] = LookParamsOption,
    as_json: bool = JsonOption,
    source: Optional[str] = SourceOption,
    region: Optional[str] = RegionOption,
    base_url: Optional[str] = BaseUrlOption,
    trace: Optional[str] = TraceOption,
    clock: Optional[str] = ClockOption,
    now: Optional[str] = NowOption,
) -> None:
    """Show the carbon intensity now and the forecast from the configured sources (with fallback)."""
    from ..scheduling import outlook

    config = load_params_with_overrides(
        params, sources=source, region=region, base_url=base_url, clock=clock, now=now, trace=trace
    )
    config, moment = _replayed(config, config.carbon.horizon)
    summary = run_or_exit(lambda: outlook.intensity_summary(config, moment))
    print_json(summary) if as_json else print_result(outlook.render_intensity(summary))


@app.command("plan")
def plan(
    params: Optional[Path] = LookParamsOption,
    as_json: bool = JsonOption,
    source: Optional[str] = SourceOption,
    region: Optional[str] = RegionOption,
    base_url: Optional[str] = BaseUrlOption,
    trace: Optional[str] = TraceOption,
    duration: Optional[str] = typer.Option(
        None, "--duration", help="Job length instead of scheduler.expected_duration, with its unit (90min, 4h; auto)."
    ),
    max_wait: Optional[str] = typer.Option(
        None, "--max-wait", "--slack", help="Longest wait instead of scheduler.max_wait (e.g. 12h)."
    ),
    clock: Optional[str] = ClockOption,
    now: Optional[str] = NowOption,
) -> None:
    """Plan the job's low-carbon window now with wait-for-window's planner; waits for nothing, writes nothing.
    Without a params file: the defaults, on the real clock."""
    from ..scheduling import outlook
    from ..scheduling.duration import DurationEstimate
    from ..training.duration import expected_duration

    config = load_params_with_overrides(
        params, sources=source, region=region, base_url=base_url, duration=duration, slack=max_wait, clock=clock,
        now=now, trace=trace,
    )
    estimate = expected_duration(config)
    if duration is not None and estimate.source == "params":  # the figure the option gave, not the params file's
        estimate = DurationEstimate(estimate.seconds, "option", "--duration")
    config, moment = _replayed(config, config.scheduler.max_wait + estimate.seconds)

    def make_plan() -> dict:
        ahead = outlook.look_ahead(config, moment, moment, estimate.seconds)
        return outlook.plan_summary(ahead, estimate.source, estimate.basis, config.scheduler.clock, moment)

    summary = run_or_exit(make_plan)
    print_json(summary) if as_json else print_result(outlook.render_plan(summary))


@app.command("wait-for-window")
def wait_for_window(params: Path = ParamsOption) -> None:
    """Plan the low-carbon window; wait for it on the real clock (re-planning), record it on the simulated one."""
    from ..pipeline import wait_for_window as stage

    config = load_params_or_exit(params)
    print_progress(run_or_exit(lambda: stage.run_stage(config, print_progress)).line())


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
    run_name = run or "optimized"
    if run_name not in ("baseline", "optimized"):  # before torch loads: a typo is answered at once
        exit_with(UsageError(f"--run: expected baseline or optimized, got {run_name!r}"))
    require_torch("train")
    config = load_params_or_exit(params)
    if run_name == "baseline":
        from ..pipeline import train_baseline

        summary = run_or_exit(lambda: train_baseline.run_stage(config))
    else:
        from ..pipeline import train_optimized

        summary = run_or_exit(lambda: train_optimized.run_stage(config, print_progress))
    if summary is None:  # a torchrun rank other than 0: rank 0 reports
        return
    kg, training = summary.carbon_metrics.total_emissions_kg, summary.training_metrics
    emissions = "unknown" if kg is None else f"{kg * 1000:.3f} g CO2"
    print_progress(
        f"train {run_name}: accuracy {training.final_accuracy:.2f} %, {training.total_time_seconds:.1f} s, "
        f"{emissions}, precision {summary.precision}"
    )


@app.command("compare")
def compare(params: Path = ParamsOption) -> None:
    """Write metrics/comparison.json, metrics/summary.json and stages/compare/ (report.md, charts, plot data)."""
    load_params_or_exit(params)  # validated for consistency with the other stages; compare needs only artifacts
    from ..pipeline import compare as stage

    result = run_or_exit(stage.run_stage)
    if result.comparable:
        savings, split = result.carbon_savings, result.decomposition
        paired = split.configuration_effect_kg
        print_progress(
            f"compare: {savings.reduction_percentage:.1f} % less CO2; schedule effect "
            f"{split.schedule_effect_kg * 1000:.4g} g, configuration effect "
            + ("not profiled" if paired is None else f"{paired * 1000:.4g} g (paired)")
            + f", naive two-run {split.configuration_effect_naive_kg * 1000:.4g} g; {split.verdict_text}"
        )
    else:
        print_progress(f"compare: not comparable: {result.not_comparable_reason}")


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="A git revision (or `workspace`: the working tree)."),
    b: str = typer.Argument("workspace", help="Another revision, or `workspace` (the default)."),
    as_json: bool = JsonOption,
) -> None:
    """Two runs' key metrics (metrics/summary.json) side by side: with the same params and code every difference is
    marked run-to-run noise; otherwise energy, CO2 and time differences inside the measured noise band are marked
    within noise, not change."""
    from ..report import diff as compare_runs

    result = run_or_exit(lambda: compare_runs.diff(a, b))
    print_json(result.to_json()) if as_json else print_result(compare_runs.render(result))


CheckOption = typer.Option(
    None, "--check",
    help="Check the method on this machine instead: aa (the baseline against itself: expect no measurable "
    "difference) or sensitivity (against its twin doing profile.twin_extra_work_pct more work per sample: "
    "expect more).",
)


@app.command("profile")
def profile(params: Path = ParamsOption, as_json: bool = JsonOption, check: Optional[str] = CheckOption) -> None:
    """Energy and time per training sample of baseline and optimized, measured paired, with 95 % intervals.

    Alternating bursts of both configurations in several fresh worker processes (the `profile` params section),
    stopped when the verdict is settled or profile.budget_pct of the baseline's energy is spent, on
    stages/fetch-data/dataset.pt, with the most direct energy counter there is (NVML, RAPL, else the process tree's
    model estimate). Progress goes to stderr.
    """
    require_torch("profile")
    from ..profiling import checks, render

    config = load_params_or_exit(params)
    if check not in (None, *checks.CHECKS):
        exit_with(UsageError(f"--check: {check!r} is not one of {', '.join(checks.CHECKS)}"))
    result = run_or_exit(lambda: checks.run(config, check))
    compared = checks.compared(check)
    if as_json:
        print_json({**render.flat_summary(result, compared), **checks.expectation(result, check, config)})
    else:
        print_result(render.render_text(result) + checks.expectation_text(result, check, config))
