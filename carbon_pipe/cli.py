"""The `carbon-pipe` command. Each command is thin: load params, call one library function, print a summary.

Heavy imports (torch, codecarbon, pandas) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer

from .errors import CarbonPipeError

app = typer.Typer(
    help="Carbon-aware, reproducible PyTorch training with honest, time-resolved emissions accounting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = typer.Option(Path("params.yaml"), "--params", "-p", help="The params file (every knob lives there).")
Result = TypeVar("Result")


def _run(action: Callable[[], Result]) -> Result:
    """Turn our typed errors into one line on stderr and a non-zero exit."""
    try:
        return action()
    except CarbonPipeError as exc:
        for line in str(exc).splitlines() or [exc.__class__.__name__]:
            print(f"carbon-pipe: error: {line}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("carbon-pipe: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


def _load(path: Path):
    from .params import load_params

    return _run(lambda: load_params(path))


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@app.command("fetch-data")
def fetch_data(params: Path = ParamsOption) -> None:
    """Fetch MNIST (from $CARBON_PIPE_DATA_MIRROR if set) into stages/fetch-data/ as uint8 tensors."""
    from . import data

    config = _load(params)
    manifest = _run(lambda: data.run_stage(config.data))
    _say(f"fetch-data: {manifest['train_samples']} train / {manifest['test_samples']} test images ({manifest['origin']})")


SourceOption = typer.Option(None, "--source", help="Use these sources instead of carbon.sources (comma-separated chain, e.g. uk,mock).")
RegionOption = typer.Option(None, "--region", help="Region of the first source (uk: national, 1-17 or an outcode; electricitymaps: zone; watttime: region).")
BaseUrlOption = typer.Option(None, "--base-url", help="Base URL of the first source (a mirror, proxy or test server).")
JsonOption = typer.Option(False, "--json", help="Print one JSON object instead of text.")


def _load_with(path: Path, **overrides: Optional[str]):
    from .params import with_overrides

    config = _load(path)
    return _run(lambda: with_overrides(config, **overrides))


def _print_json(data: dict) -> None:
    import json

    print(json.dumps(data, indent=2))


@app.command("intensity")
def intensity(
    params: Path = ParamsOption,
    as_json: bool = JsonOption,
    source: Optional[str] = SourceOption,
    region: Optional[str] = RegionOption,
    base_url: Optional[str] = BaseUrlOption,
) -> None:
    """Show the carbon intensity now and the forecast from the configured sources (with fallback)."""
    from . import outlook, schedule

    config = _load_with(params, sources=source, region=region, base_url=base_url)
    report = _run(lambda: outlook.intensity_report(config, schedule.make_clock(config).now()))
    _print_json(report) if as_json else print(outlook.render_intensity(report))


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
    from . import outlook, schedule
    from .duration import expected_duration

    config = _load_with(params, sources=source, region=region, base_url=base_url, duration=duration, slack=slack)

    def make_plan() -> dict:
        estimate = expected_duration(config)
        now = schedule.make_clock(config).now()
        ahead = outlook.look_ahead(config, now, now, estimate.seconds)
        return outlook.plan_report(ahead, estimate.source, estimate.basis)

    report = _run(make_plan)
    _print_json(report) if as_json else print(outlook.render_plan(report))


@app.command("wait-for-window")
def wait_for_window(params: Path = ParamsOption) -> None:
    """Plan the low-carbon window; wait for it on the real clock (re-planning as forecasts update), record it on the simulated one."""
    from . import schedule

    config = _load(params)
    decision = _run(lambda: schedule.run_stage(config, _say))
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
    """Train one configuration with energy tracking; write the model, logs and metrics/<run>.json."""
    config = _load(params)
    run_name = run or "optimized"
    if run_name not in ("baseline", "optimized"):
        _say(f"carbon-pipe: error: --run: expected baseline or optimized, got {run_name!r}")
        raise typer.Exit(2)
    from . import train as training

    summary = _run(lambda: training.run_training(config, run_name))
    carbon = summary["carbon_metrics"]
    emissions = "unknown" if carbon["total_emissions_kg"] is None else f"{carbon['total_emissions_kg'] * 1000:.3f} g CO2"
    _say(
        f"train {run_name}: accuracy {summary['training_metrics']['final_accuracy']:.2f} %, "
        f"{summary['training_metrics']['total_time_seconds']:.1f} s, {emissions}, precision {summary['precision']}"
    )


@app.command("compare")
def compare(params: Path = ParamsOption) -> None:
    """Write metrics/comparison.json and stages/compare/report.md from the two runs' artifacts."""
    _load(params)  # validated for consistency with the other stages; compare needs only artifacts
    from . import compare as comparison

    result = _run(comparison.run_stage)
    if result["comparable"]:
        savings, split = result["carbon_savings"], result["decomposition"]
        _say(
            f"compare: {savings['reduction_percentage']:.1f} % less CO2 "
            f"(schedule {split['schedule_effect_kg'] * 1000:.3f} g + configuration {split['configuration_effect_kg'] * 1000:.3f} g)"
        )
    else:
        _say(f"compare: not comparable: {result['not_comparable_reason']}")


if __name__ == "__main__":
    app()
