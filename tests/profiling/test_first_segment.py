"""The profile inside the pipeline: its processes spread over the optimized run's training and charged to it, the
effects with their intervals and SCI re-derived by hand from the artifacts (plain loops, no carbon_pipe code), the
model bytes untouched, a resumed run going on with its profile where it stopped, and optimized: auto choosing the
cheapest candidate within its memory budget."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from carbon_pipe.config.params import parse_params
from carbon_pipe.errors import TrainingStopped
from carbon_pipe.intensity.horizon import read_horizon
from carbon_pipe.pipeline import compare, train_optimized, wait_for_window
from carbon_pipe.profiling import candidates, first_segment
from carbon_pipe.profiling.result import Interval, describe
from carbon_pipe.profiling.steps import TrainSplit
from carbon_pipe.scheduling.decision import read_decision
from carbon_pipe.timeutil import parse_instant
from carbon_pipe.training import distributed
from carbon_pipe.training.placement import Placement
from carbon_pipe.training.segments import Segment

from ..conftest import run_training, synthetic_dataset, tiny_params, tiny_pipeline, write_params

RUN = Path("stages/train-optimized")
T975 = {  # Student's t at 97.5 %, by degrees of freedom (tables)
    2: 4.302652730, 3: 3.182446305, 5: 2.570581836, 9: 2.262157163,
}
SECONDS_PER_YEAR = 365 * 24 * 3600


def rows_of(path: Path) -> list[dict]:
    return pd.read_csv(path).to_dict("records")


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    """Both runs trained as their stages train them (the optimized run profiles first), then compare."""
    folder = tmp_path_factory.mktemp("effects")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        tiny_pipeline(train=384)
        yield folder


def read(folder: Path, path: str):
    text = (folder / path).read_text()
    return json.loads(text) if path.endswith(".json") else text


@pytest.mark.slow
def test_the_profiles_processes_are_spread_over_the_training_at_equal_shares_charged_and_counted(piped):
    rows = rows_of(piped / RUN / "energy_intervals.csv")
    profiled = [row for row in rows if row["phase"] == "profile"]
    trained = [row for row in rows if row["phase"] == "training"]
    assert {row["segment"] for row in profiled} == {0, 2, 4} and {row["segment"] for row in trained} == {1, 3, 5}
    decision = read(piped, "stages/wait-for-window/decision.json")
    assert min(parse_instant(row["start"]) for row in profiled) == parse_instant(decision["start"])
    for earlier, later in zip(range(5), range(1, 6)):  # back to back on the clock, never overlapping
        ends = [parse_instant(row["end"]) for row in rows if row["segment"] == earlier]
        assert max(ends) <= min(parse_instant(row["start"]) for row in rows if row["segment"] == later)
    optimized = read(piped, "metrics/optimized.json")
    log = optimized["training_metrics"]["segment_log"]
    steps = log[-1]["last_step"]
    assert [(entry["segment"], entry["first_step"]) for entry in log] == [
        (1, 0), (3, round(steps / 3)), (5, round(2 * steps / 3))
    ]
    assert optimized["profile"]["segments"] == [0, 2, 4]
    for row in profiled:  # charged the intensity of when it ran
        assert row["emissions_kg"] == pytest.approx(row["energy_kwh"] * row["intensity_g_per_kwh"] / 1000, rel=1e-12)
    profile_kwh, profile_kg = sum(r["energy_kwh"] for r in profiled), sum(r["emissions_kg"] for r in profiled)
    carbon = optimized["carbon_metrics"]
    assert profile_kg > 0 and carbon["total_emissions_kg"] == pytest.approx(sum(r["emissions_kg"] for r in rows))
    assert carbon["by_phase"]["profile"]["emissions_kg"] == pytest.approx(profile_kg, rel=1e-12)
    assert optimized["profile"]["energy_kwh"] == pytest.approx(profile_kwh, rel=1e-12)
    shown = describe(Interval(optimized["profile"]["ratio"], *optimized["profile"]["ratio_ci95"]))
    assert f"energy per sample: {shown} (95 % sequential interval over 3 fresh processes x 2 rounds; stopped: " in (
        optimized["profile"]["verdict_text"]
    )
    assert optimized["profile"]["processes"] == 3 and optimized["profile"]["stopping"]["spent_joules"] > 0
    # Shown separately: the overhead row of the report, and the flat metrics.
    baseline_kwh = sum(row["energy_kwh"] for row in rows_of(piped / "stages/train-baseline/energy_intervals.csv"))
    metrics = read(piped, "metrics/summary.json")
    assert metrics["profiling_overhead_g"] == pytest.approx(profile_kg * 1000, rel=1e-12)
    assert metrics["profiling_energy_pct_of_baseline"] == pytest.approx(100 * profile_kwh / baseline_kwh, rel=1e-9)
    report = read(piped, "stages/compare/report.md")
    assert f"| profiling overhead (charged to the optimized run) | {-profile_kg * 1000:.4g} |" in report
    assert read(piped, "metrics/comparison.json")["decomposition"]["verdict_text"] in report


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def variance(values: list[float]) -> float:
    centre = mean(values)
    return sum((value - centre) ** 2 for value in values) / (len(values) - 1)


def per_process(bursts: list[dict], name: str) -> list[float]:
    """One configuration's joules per sample averaged over each worker process's measured rounds, in process order."""
    processes = sorted({b["process"] for b in bursts})
    return [mean([b["joules"] / b["samples"] for b in bursts
                  if b["configuration"] == name and b["round"] >= 0 and b["process"] == process])
            for process in processes]


def fieller(numerator: list[float], denominator: list[float], t: float) -> tuple[float, float, float]:
    """The ratio of paired means and every R with (mean_n - R mean_d)^2 <= t^2 / n var(n - R d), by hand."""
    n, mx, my = len(numerator), mean(numerator), mean(denominator)
    sxy = sum((x - mx) * (y - my) for x, y in zip(numerator, denominator)) / (n - 1)
    q = t * t / n
    a, b, c = my * my - q * variance(denominator), mx * my - q * sxy, mx * mx - q * variance(numerator)
    root = math.sqrt(b * b - a * c)
    return mx / my, (b - root) / a, (b + root) / a


def mean_intensity(grid: list[tuple[float, float, float]], start: float, end: float) -> float:
    overlaps = [(min(end, b) - max(start, a), value) for a, b, value in grid if min(end, b) > max(start, a)]
    if not overlaps:  # a zero-length interval: the value in force then
        return next(value for a, b, value in grid if a <= start < b)
    return sum(length * value for length, value in overlaps) / sum(length for length, _ in overlaps)


@pytest.mark.slow
def test_the_effects_and_their_intervals_re_derived_by_hand(piped):
    """From profile.json's bursts, the runs' energy_intervals.csv and intensity.csv, with plain loops."""
    bursts = read(piped, "stages/train-optimized/profile.json")["profile"]["bursts"]
    baseline_jps, optimized_jps = per_process(bursts, "baseline"), per_process(bursts, "optimized")
    t = T975[len(baseline_jps) - 1]  # one planned look (three processes): no sequential correction
    ratio, low, high = fieller(optimized_jps, baseline_jps, t)
    baseline_kg = sum(row["emissions_kg"] for row in rows_of(piped / "stages/train-baseline/energy_intervals.csv"))
    split = read(piped, "metrics/comparison.json")["decomposition"]
    tolerance = 2e-3 * baseline_kg  # the one look's Pocock constant is 1.9598 by integration, not 1.95996
    assert split["configuration_ratio"] == pytest.approx(ratio, rel=1e-9)
    assert split["configuration_effect_kg"] == pytest.approx(baseline_kg * (1 - ratio), rel=1e-9)
    assert split["configuration_effect_kg_ci95"] == pytest.approx(
        [baseline_kg * (1 - high), baseline_kg * (1 - low)], abs=tolerance
    )
    # Schedule effect: the optimized run in one go (its profile, then its training) moved to the baseline's start.
    grid = [(parse_instant(r["start"]), parse_instant(r["end"]), r["carbon_intensity"])
            for r in rows_of(piped / "stages/wait-for-window/intensity.csv")]
    run = sorted(rows_of(piped / RUN / "energy_intervals.csv"), key=lambda row: parse_instant(row["start"]))
    baseline_start = parse_instant(read(piped, "metrics/baseline.json")["scheduler_metrics"]["start"])
    reached, removed, first = parse_instant(run[0]["start"]), 0.0, parse_instant(run[0]["start"])
    at_baseline_kg = training_kg = 0.0
    for row in run:
        start, end = parse_instant(row["start"]), parse_instant(row["end"])
        removed += max(0.0, start - reached)  # a stretch nothing measured: taken out
        reached = max(reached, end)
        if row["phase"] == "training":
            shift = baseline_start - first - removed
            at_baseline_kg += row["energy_kwh"] * mean_intensity(grid, start + shift, end + shift) / 1000
            training_kg += row["emissions_kg"]
    schedule = at_baseline_kg - training_kg
    centre = mean(optimized_jps)
    half = t * math.sqrt(variance(optimized_jps) / len(optimized_jps))
    assert split["schedule_effect_kg"] == pytest.approx(schedule, rel=1e-6)
    assert split["schedule_effect_kg_ci95"] == pytest.approx(
        sorted([schedule * (centre - half) / centre, schedule * (centre + half) / centre]), rel=2e-3
    )
    assert split["configuration_effect_naive_kg"] == pytest.approx(baseline_kg - at_baseline_kg, rel=1e-6)
    assert split["remainder_kg"] == pytest.approx(baseline_kg - at_baseline_kg - baseline_kg * (1 - ratio), rel=1e-6)


@pytest.mark.slow
def test_sci_re_derived_by_hand(piped):
    comparison, metrics = read(piped, "metrics/comparison.json"), read(piped, "metrics/summary.json")
    report = read(piped, "stages/compare/report.md")
    per_run, per_samples = [], []
    for run in ("baseline", "optimized"):
        rows = rows_of(piped / f"stages/train-{run}/energy_intervals.csv")
        operational_kg = sum(row["energy_kwh"] * row["intensity_g_per_kwh"] / 1000 for row in rows)  # E x I
        held = sum(parse_instant(row["end"]) - parse_instant(row["start"]) for row in rows)  # one node
        embodied_kg = 1000 * held / (4 * SECONDS_PER_YEAR)  # M: the defaults, 1000 kg over 4 years
        summary = read(piped, f"metrics/{run}.json")
        samples = summary["training_metrics"]["train_samples"] * summary["training_metrics"]["epochs"]
        sci = summary["sci"]
        assert sci["operational_g"] == pytest.approx(operational_kg * 1000, rel=1e-9)
        assert sci["embodied_g"] == pytest.approx(embodied_kg * 1000, rel=1e-9)
        assert sci["per_run_g"] == pytest.approx((operational_kg + embodied_kg) * 1000, rel=1e-9)
        assert sci["per_1000_samples_g"] == pytest.approx((operational_kg + embodied_kg) * 1e6 / samples, rel=1e-9)
        assert sci["held_idle_energy_kwh"] == 0 and sci["held_idle"] == "not-held"
        assert comparison["sci"][run] == sci
        assert metrics[f"{run}_sci_g_per_run"] == sci["per_run_g"]
        assert metrics[f"{run}_sci_g_per_1000_samples"] == sci["per_1000_samples_g"]
        per_run.append(f"{sci['per_run_g']:.4g}")
        per_samples.append(f"{sci['per_1000_samples_g']:.4g}")
    assert f"| SCI, g CO2e per training run | {' | '.join(per_run)} |" in report
    assert f"| SCI, g CO2e per 1,000 training samples | {' | '.join(per_samples)} |" in report


@pytest.fixture
def planned(workspace):
    params = parse_params(tiny_params())
    synthetic_dataset()
    wait_for_window.run_stage(params, say=lambda line: None)
    return params


@pytest.mark.slow
def test_profiling_leaves_the_model_bytes_as_they_are(planned):
    summary = train_optimized.run_stage(planned).to_json()  # profiles between shares of its training
    assert summary["profile"]["segments"] == [0, 2, 4] and summary["profile"]["energy_kwh"] > 0
    profiled = (RUN / "model.pt").read_bytes()
    run_training(planned, "optimized")  # the same run, not profiled
    assert (RUN / "model.pt").read_bytes() == profiled


@pytest.mark.slow
def test_a_resumed_optimized_run_does_not_profile_again(planned):
    placed = Placement.scheduled(read_decision(), read_horizon())
    first_segment.profile_first(planned, placed, distributed.one_process(torch.device("cpu")), time.time)
    kept = json.loads((RUN / "resume" / "profile.json").read_text())
    with pytest.raises(TrainingStopped):  # training begins after the profile, then stops (as a SIGTERM would)
        run_training(planned, "optimized", Segment(until_step=2))
    summary = train_optimized.run_stage(planned).to_json()
    rows = pd.read_csv(RUN / "energy_intervals.csv")
    assert rows.groupby("segment")["phase"].first().tolist() == ["profile", "training", "training"]
    assert json.loads((RUN / "profile.json").read_text())["profile"]["bursts"] == kept["profile"]["bursts"]
    assert summary["profile"]["segments"] == [0] and summary["training_metrics"]["resumed_at_step"] == 2


@pytest.mark.slow
def test_a_resumed_run_goes_on_with_its_spread_profile_from_the_process_it_stopped_after(planned):
    placed = Placement.scheduled(read_decision(), read_horizon())
    job = distributed.one_process(torch.device("cpu"))
    first_segment.profile_first(planned, placed, job, time.time, spread=True)  # as a SIGTERM after it would leave
    kept = json.loads((RUN / "resume" / "profile.json").read_text())
    assert kept["profile"]["stopping"]["reason"] == "under way" and kept["profile"]["processes"] == 1
    summary = train_optimized.run_stage(planned).to_json()
    bursts = json.loads((RUN / "profile.json").read_text())["profile"]["bursts"]
    assert bursts[: len(kept["profile"]["bursts"])] == kept["profile"]["bursts"]  # process 1 kept, not measured again
    assert {burst["process"] for burst in bursts} == {0, 1, 2} and summary["profile"]["segments"] == [0, 2, 4]
    assert summary["profile"]["stopping"]["spent_joules"] > kept["profile"]["stopping"]["spent_joules"]


def test_pick_takes_the_cheapest_within_the_budget():
    energy = {"big": 1.0, "middle": 2.0, "small": 3.0}
    memory = {"big": 500.0, "middle": 120.0, "small": 80.0}
    assert candidates.pick(energy, memory, None) == "big"
    assert candidates.pick(energy, memory, 200) == "middle"  # the cheapest does not fit
    assert candidates.pick(energy, memory, 100) == "small"


KNOWN_COST_MODEL = '''
import time

import torch


class KnownCost(torch.nn.Module):
    """Each forward pass spins for a known CPU time: 0.15 of it under bf16 autocast, 2.5 times it on channels_last input
    (spinning, not sleeping: the process tree is charged its CPU time).
    Its activations are spread wide (about 0.9 MB a sample, kept for the backward pass), its weights few, so its
    training memory grows with the micro-batch."""

    def __init__(self, num_classes=10, in_channels=3, image_size=12, delay=0.05, spread=512):
        super().__init__()
        self.delay = delay
        self.scale = torch.nn.Parameter(torch.ones(spread))
        self.out = torch.nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, images):
        factor = 0.15 if torch.is_autocast_enabled("cpu") else 1.0
        end = time.process_time() + self.delay * factor * (1.0 if images.is_contiguous() else 2.5)
        while time.process_time() < end:
            pass
        features = images.flatten(1)
        wide = features.unsqueeze(-1).expand(-1, -1, len(self.scale)) * self.scale
        return self.out(wide.mean(-1))
'''


def colour_dataset(train: int = 64, test: int = 32, size: int = 12) -> None:
    """Random 3-channel images (channels_last differs from contiguous only with channels)."""
    from carbon_pipe.layout import DATASET_FILE

    generator = torch.Generator().manual_seed(3)
    DATASET_FILE.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "dataset": "colour", "classes": [str(k) for k in range(10)],
        "mean": torch.tensor([0.5, 0.5, 0.5]), "std": torch.tensor([0.25, 0.25, 0.25]),
        "train_images": torch.randint(0, 256, (train, 3, size, size), dtype=torch.uint8, generator=generator),
        "train_labels": torch.randint(0, 10, (train,), generator=generator),
        "test_images": torch.randint(0, 256, (test, 3, size, size), dtype=torch.uint8, generator=generator),
        "test_labels": torch.randint(0, 10, (test,), generator=generator),
    }, DATASET_FILE)


def known_cost(name: str) -> float:
    """CPU seconds spun per sample, in delays, of a candidate called e.g. 2x4-bf16-channels_last (effective 8)."""
    split, precision, layout = name.split("-")[:3]
    forwards = int(split.split("x")[1])
    return forwards * (0.15 if precision == "bf16" else 1.0) * (2.5 if layout == "channels_last" else 1.0) / 8


@pytest.mark.slow
def test_auto_picks_the_cheapest_candidate_within_the_memory_budget(workspace, monkeypatch):
    """Candidates of a model whose cost is known (CPU time, which the process tree's energy follows); a budget under
    the peak of the cheapest candidate that is not the baseline (the baseline is always profiled, as the reference),
    so the choice must go to a dearer one. On a CPU without bf16 the cheapest of all is the baseline itself."""
    monkeypatch.syspath_prepend(str(workspace))
    (workspace / "known_cost.py").write_text(KNOWN_COST_MODEL)
    colour_dataset()
    params = parse_params(tiny_params(
        model={"class": "known_cost:KnownCost", "kwargs": {}},
        baseline={"batch_size": 8}, optimized={"choose": "auto"},
    ))
    cpu = torch.device("cpu")
    runs = candidates.candidate_runs(params, cpu)
    names = {name if name != "baseline" else "8x1-fp32-contiguous" for name in runs}
    assert len(names) == 2 * 2 * (1 + len(candidates.mixed_options(cpu)))  # splits x layouts x precisions
    split = TrainSplit.load(cpu)
    memory = {name: candidates.peak_memory_mb(params, run, split) for name, run in runs.items()}
    named = {("8x1-fp32-contiguous" if name == "baseline" else name): name for name in runs}
    for cheapest in sorted((name for name in named if named[name] != "baseline"), key=known_cost):
        budget = memory[named[cheapest]] - 0.5  # the cheapest does not fit; its micro-batch's activations are MBs
        within = [name for name in named if memory[named[name]] <= budget]
        if within:
            break
    assert within and cheapest not in within
    expected = min(within, key=known_cost)
    params = params.model_copy(update={"optimized": params.optimized.model_copy(update={"memory_budget_mb": budget})})
    chosen, profile, choice = candidates.choose_configuration(params, cpu)
    assert ("8x1-fp32-contiguous" if chosen == "baseline" else chosen) == expected
    table = {row.name: row for row in choice.candidates}
    assert table[chosen].chosen and table[chosen].within_budget and choice.memory_budget_mb == budget
    assert table[named[cheapest]].j_per_sample is None and not table[named[cheapest]].within_budget
    assert choice.configuration == runs[chosen].configuration_fields()


@pytest.mark.slow
def test_auto_trains_its_choice_reports_it_and_the_choice_pinned_gives_the_same_bytes(workspace):
    raw = tiny_params(optimized={"choose": "auto", "memory_budget_mb": 4096})
    params = parse_params(raw)
    synthetic_dataset()
    wait_for_window.run_stage(params, say=lambda line: None)
    run_training(params, "baseline")
    summary = train_optimized.run_stage(params).to_json()
    choice = summary["profile"]["choice"]
    fields = choice["configuration"]
    assert summary["profile"]["trained"] == choice["chosen"] and "another run may choose otherwise" in choice["why"]
    for key in ("batch_size", "gradient_accumulation_steps", "compile", "channels_last"):
        assert summary[key] == fields[key], key
    assert summary["effective_batch_size"] == params.baseline.effective_batch_size
    assert [row["name"] for row in choice["candidates"] if row["chosen"]] == [choice["chosen"]]
    compare.run_stage()
    report = Path("stages/compare/report.md").read_text()
    assert "## optimized: auto, the candidates" in report and f"Chosen: **{choice['chosen']}**" in report
    assert report.count("| yes |") == len(choice["candidates"])  # 4 GB: every candidate within the budget
    chosen_bytes = (RUN / "model.pt").read_bytes()
    raw["optimized"] = {**raw["optimized"], "choose": "explicit", "memory_budget_mb": None, **fields}
    write_params(workspace, raw)
    run_training(parse_params(raw), "optimized")  # the choice pinned
    assert (RUN / "model.pt").read_bytes() == chosen_bytes


@pytest.mark.slow
def test_a_memory_budget_no_candidate_fits_is_one_line_and_leaves_nothing_to_resume(workspace):
    from carbon_pipe.errors import UsageError

    params = parse_params(tiny_params(optimized={"choose": "auto", "memory_budget_mb": 1}))
    synthetic_dataset()
    wait_for_window.run_stage(params, say=lambda line: None)
    with pytest.raises(UsageError, match=r"optimized.memory_budget_mb: 1 MB fits no candidate \(the smallest needs "):
        train_optimized.run_stage(params)
    assert not RUN.exists()  # no resume folder (nothing was trained), and the run's folder went with its lock


@pytest.mark.slow
def test_sigterm_during_the_profile_stops_once_its_process_is_recorded_and_the_rerun_goes_on_with_the_rest(workspace):
    import os
    import signal
    import subprocess
    import sys

    raw = tiny_params(profile={"rounds": 10, "burst_seconds": 0.3})  # a profile of several seconds
    write_params(workspace, raw)
    synthetic_dataset()
    wait_for_window.run_stage(parse_params(raw), say=lambda line: None)
    process = subprocess.Popen(
        [sys.executable, "-m", "carbon_pipe.cli", "train", "--run", "optimized"], cwd=workspace, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    journal = RUN / "resume" / "energy-node0.csv"
    deadline = time.time() + 120
    while not (journal.is_file() and len(journal.read_text().splitlines()) > 1):  # the profile is being metered
        assert process.poll() is None and time.time() < deadline, process.stderr.read() if process.poll() else ""
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM once its energy profile's process 1 was recorded" in stderr.strip().splitlines()[-1]
    kept = json.loads((RUN / "resume" / "profile.json").read_text())
    assert not (RUN / "resume" / "checkpoint.pt").exists()

    summary = train_optimized.run_stage(parse_params(raw)).to_json()
    rows = pd.read_csv(RUN / "energy_intervals.csv")
    assert rows.groupby("segment")["phase"].first().tolist() == ["profile", "training"] * 3
    bursts = json.loads((RUN / "profile.json").read_text())["profile"]["bursts"]
    assert bursts[: len(kept["profile"]["bursts"])] == kept["profile"]["bursts"]
    assert summary["profile"]["energy_kwh"] == pytest.approx(rows.loc[rows["phase"] == "profile", "energy_kwh"].sum())
