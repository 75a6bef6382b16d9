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


def _load(path: Path):
    from .params import load_params

    return _run(lambda: load_params(path))


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@app.command("fetch-data")
def fetch_data(params: Path = ParamsOption) -> None:
    """Fetch data.dataset (from its mirror folder if set, e.g. $CARBON_PIPE_MNIST_MIRROR) as uint8 tensors."""
    from . import data

    config = _load(params)
    manifest = _run(lambda: data.run_stage(config.data))
    _say(f"fetch-data: {manifest['train_samples']} train / {manifest['test_samples']} test images ({manifest['origin']})")


@app.command("wait-for-window")
def wait_for_window(params: Path = ParamsOption) -> None:
    """Plan the low-carbon start window; wait for it on the real clock, record it on the simulated one."""
    from . import schedule

    config = _load(params)
    decision = _run(lambda: schedule.run_stage(config, _say))
    _say(
        f"wait-for-window: {decision['rule']} rule, {decision['clock']} clock: start {decision['start']} "
        f"after {decision['wait_seconds'] / 3600:.2f} h at {decision['expected_mean_intensity_g_per_kwh']:.1f} g/kWh "
        f"(now {decision['now_mean_intensity_g_per_kwh']:.1f}; {decision['expected_saving_vs_now_pct']:.1f} % lower)"
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
    """
    config = _load(params)
    run_name = run or "optimized"
    if run_name not in ("baseline", "optimized"):
        _say(f"carbon-pipe: error: --run: expected baseline or optimized, got {run_name!r}")
        raise typer.Exit(2)
    from . import train as training

    summary = _run(lambda: training.run_training(config, run_name))
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
