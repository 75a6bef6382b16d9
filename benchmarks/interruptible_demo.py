"""Pause-and-resume on carbon, measured: the optimized run planned flexible vs interruptible on the same trace.

    python benchmarks/interruptible_demo.py [--train-samples 8000] [--epochs 1]

In a scratch project on an MNIST subset: a first optimized run measures how long the job takes (A seconds, rounded
to an even number), which becomes `scheduler.expected_duration`, so the plans are sized for the real run. Then a
synthetic trace (submission at 18:00 UTC, 400 g/kWh, except a windy night whose cleanest part is short: 200 for A/2
from 21:00, then 100 for A/2; and a second clean stretch, 100 for A/2 at 23:00) is planned both ways, each plan
trained by `carbon-pipe train`'s code path and compared with the same baseline (at 18:00). Prints the plans, the
measured emissions and the decomposition.
On the simulated clock: the pauses are recorded, not slept, so this takes a minute or two, not five hours.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from common import project_params, scratch_project  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    return parser.parse_args()


def write_trace(path: Path, submitted: float, job: float) -> None:
    """Rows at the changes only: each value holds until the next row."""
    changes = [(0, 400), (3 * 3600, 200), (3 * 3600 + job // 2, 100), (3 * 3600 + job, 400),
               (5 * 3600, 100), (5 * 3600 + job // 2, 400), (12 * 3600, 400)]
    path.write_text("timestamp,carbon_intensity\n" + "".join(f"{submitted + t:.0f},{v}\n" for t, v in changes))


def main() -> None:
    args = parse_args()
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.pipeline import compare, train_baseline, train_optimized, wait_for_window
    from carbon_pipe.timeutil import iso, parse_instant

    raw = project_params(
        data={"train_limit": args.train_samples, "test_limit": args.test_samples},
        train={"epochs": args.epochs},
        energy={"measure_power_secs": 1},
    )
    with scratch_project(raw, "carbon-pipe-interruptible-") as folder:
        calibration = train_optimized.run_stage(parse_params(raw))
        measured = calibration.training_metrics.total_time_seconds
        job = max(2, 2 * round(measured / 2))
        write_trace(folder / "trace.csv", parse_instant(raw["scheduler"]["now"]), job)
        raw["carbon"].update(sources=["csv"], csv={"path": str(folder / "trace.csv")}, horizon="12h")
        raw["scheduler"].update(expected_duration=f"{job}s", max_wait="6h")

        rows, models = {}, {}
        for mode in ("flexible", "interruptible"):
            raw["scheduler"]["mode"] = mode
            (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            params = parse_params(raw)
            decision = wait_for_window.run_stage(params, say=lambda line: None)
            if mode == "flexible":
                train_baseline.run_stage(params)
            summary = train_optimized.run_stage(params)
            models[mode] = hashlib.sha256((folder / "stages/train-optimized/model.pt").read_bytes()).hexdigest()
            rows[mode] = (decision, summary, compare.run_stage())

    print(
        f"job: {measured:.1f} s measured, planned as {job} s ({args.train_samples} samples x {args.epochs} epoch(s)); "
        f"trace: 400 g/kWh, 200 then 100 from 21:00 ({job // 2} s each), 100 at 23:00 ({job // 2} s); baseline at 18:00"
    )
    print("| plan | planned chunks (UTC) | expected g/kWh | ran in | measured g/kWh | energy Wh | CO2 mg "
          "| reduction % | schedule mg | configuration mg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, (decision, summary, result) in rows.items():
        carbon, split = summary.carbon_metrics, result.decomposition
        chunks = ", ".join(f"{iso(c.start)[11:19]}-{iso(c.end)[11:19]}" for c in decision.chunks)
        ran = summary.scheduler_metrics.chunks
        ran_in = f"{len(ran)} chunks" if ran else "one go"
        print(f"| {mode} | {chunks} | {decision.expected_mean_intensity:.0f} | {ran_in} "
              f"| {carbon.mean_intensity_g_per_kwh:.1f} | {carbon.energy_consumed_kwh * 1000:.4f} "
              f"| {carbon.total_emissions_kg * 1e6:.3f} | {result.carbon_savings.reduction_percentage:.1f} "
              f"| {split.schedule_effect_kg * 1e6:.3f} | {split.configuration_effect_kg * 1e6:.3f} |")
    baseline = rows["flexible"][2].carbon_savings.baseline_emissions_kg
    flexible, chunked = (
        rows[mode][1].carbon_metrics.total_emissions_kg for mode in ("flexible", "interruptible")
    )
    print(
        f"baseline: {baseline * 1e6:.3f} mg CO2; "
        f"interruptible vs flexible: {100 * (1 - chunked / flexible):.1f} % less CO2"
    )
    for chunk in rows["interruptible"][1].scheduler_metrics.chunks:
        print(f"  chunk {chunk['chunk']}: planned {chunk['planned_start'][11:19]}-{chunk['planned_end'][11:19]}, "
              f"ran {chunk['start'][11:19]}-{chunk['end'][11:19]}, steps {chunk['first_step']}-{chunk['last_step']}")
    print(f"model.pt identical in both plans: {models['flexible'] == models['interruptible']}")


if __name__ == "__main__":
    main()
