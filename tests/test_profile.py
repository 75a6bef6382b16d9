"""carbon-pipe profile: the energy counters (RAPL on a fake sysfs, NVML faked at its reader) and the real command."""

import json
import re
import subprocess
import sys
import time

import pytest

from carbon_pipe.params import parse_params
from carbon_pipe.profiling import counters
from carbon_pipe.profiling.measure import run_profile

from .conftest import synthetic_dataset, tiny_params, write_params

QUICK_PROFILE = {"rounds": 4, "warmup_rounds": 1, "burst_seconds": 0.05}


def zone(root, name: str, label: str, energy_uj: int, max_range_uj: int = 1_000_000):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(label + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return folder


def advance(folder, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_adds_packages_and_dram_across_wrap_around(tmp_path):
    package = zone(tmp_path, "intel-rapl:0", "package-0", 990_000)
    core = zone(tmp_path, "intel-rapl:0:0", "core", 5)  # inside the package's count: left out
    dram = zone(tmp_path, "intel-rapl:0:1", "dram", 100)
    psys = zone(tmp_path, "intel-rapl:1", "psys", 0)  # the platform, overlapping the package: left out
    counter = counters.open_counter("cpu", 0, "GBR", powercap=tmp_path)
    assert isinstance(counter, counters.RaplCounter)
    assert counter.method == "CPU: RAPL counters (measured: package-0, dram)"
    advance(package, 995_000), advance(dram, 600), advance(core, 900_000), advance(psys, 900_000)
    assert counter.joules() == pytest.approx(0.0055)
    advance(package, 3_000)  # wrapped: 5,000 uJ to the end of its range, then 3,000
    assert counter.joules() == pytest.approx(0.0135)
    advance(dram, 700)
    assert counter.joules() == pytest.approx(0.0136)


def gpu_at(watts: float):
    """A fake NVML total-energy reading (millijoules) of a GPU drawing `watts`: the counter as the driver keeps it."""
    return lambda device_index: (lambda: int(time.perf_counter() * watts * 1000))


def test_on_cuda_the_nvml_counter_is_read_and_rapl_added_where_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(counters, "nvml_energy_reader", gpu_at(300))
    alone = counters.open_counter("cuda", 0, "GBR", powercap=tmp_path)
    assert isinstance(alone, counters.NvmlCounter)
    assert alone.method.startswith("GPU 0: NVML total-energy counter (measured); CPU and RAM not counted (RAPL: no")
    zone(tmp_path, "intel-rapl:0", "package-0", 0)
    both = counters.open_counter("cuda", 0, "GBR", powercap=tmp_path)
    assert both.method == "GPU 0: NVML total-energy counter (measured); CPU: RAPL counters (measured: package-0)"


def test_the_gpu_path_profiles_with_the_nvml_counter(workspace, monkeypatch):
    """The profile as it runs on a GPU, its counter the NVML one (faked at its reader; the steps run on the CPU)."""
    monkeypatch.setattr(counters, "nvml_energy_reader", gpu_at(300))
    synthetic_dataset()
    params = parse_params(tiny_params(profile=QUICK_PROFILE))
    counter = counters.open_counter("cuda", 0, "GBR", powercap=workspace / "no-powercap")
    profile = run_profile(params, counter=counter)
    assert profile.energy_method.startswith("GPU 0: NVML total-energy counter")
    assert len(profile.bursts) == 10
    for burst in profile.bursts:  # 300 W over each burst, to the counter's millijoule
        assert burst.joules == pytest.approx(300 * burst.seconds, abs=0.05 + 0.01 * burst.joules)
    optimized = profile.configuration("optimized")
    assert optimized.ratio.value == pytest.approx(
        optimized.j_per_sample.value / profile.configuration("baseline").j_per_sample.value
    )


def test_candidates_are_profiled_in_mirrored_rounds_each_against_the_baseline(workspace, monkeypatch):
    monkeypatch.setattr(counters, "nvml_energy_reader", gpu_at(300))
    synthetic_dataset()
    params = parse_params(tiny_params(profile=QUICK_PROFILE))
    runs = {"baseline": params.baseline, "optimized": params.optimized,
            "micro-32": params.baseline.model_copy(update={"batch_size": 32, "gradient_accumulation_steps": 2})}
    profile = run_profile(params, runs, counters.open_counter("cuda", 0, "GBR", powercap=workspace / "none"))
    assert [config.name for config in profile.configurations] == ["baseline", "optimized", "micro-32"]
    assert [burst.configuration for burst in profile.bursts if burst.round in (0, 1)] == [
        "baseline", "optimized", "micro-32", "micro-32", "optimized", "baseline"]
    assert profile.configuration("baseline").ratio is None
    for name in ("optimized", "micro-32"):
        config = profile.configuration(name)
        assert config.ratio.value == pytest.approx(
            config.j_per_sample.value / profile.configuration("baseline").j_per_sample.value
        )
        assert config.ratio.contains(config.ratio.value) and config.verdict is not None


def test_without_a_gpu_counter_or_rapl_codecarbon_is_read_through_its_task_api(tmp_path, monkeypatch):
    def no_counter(device_index):
        raise counters.CounterUnavailable("NVML total-energy counter: NVMLError_NotSupported: Not Supported")

    monkeypatch.setattr(counters, "nvml_energy_reader", no_counter)
    counter = counters.open_counter("cuda", 0, "GBR", powercap=tmp_path)
    try:
        assert counter.method.startswith("CodeCarbon's model via its task API (")
        assert counter.method.endswith(
            "no direct counter: NVML total-energy counter: NVMLError_NotSupported: Not Supported"
        )
        first = counter.joules()
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:  # a fifth of a second of work
            pass
        assert counter.joules() > first > 0
    finally:
        counter.close()


def profile_command(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "profile", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_profile_json_is_consistent_with_its_bursts(workspace):
    synthetic_dataset()
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    report = json.loads(profile_command("--json").stdout)
    for key in ("baseline_j_per_sample", "optimized_j_per_sample", "ratio", "ratio_ci95", "verdict", "energy_method",
                "profiling_energy_kwh", "bursts", "baseline_s_per_sample_ci95", "optimized_precision"):
        assert key in report, key
    assert report["ratio"] == pytest.approx(
        report["optimized_j_per_sample"] / report["baseline_j_per_sample"], rel=1e-12
    )
    low, high = report["ratio_ci95"]
    assert low <= report["ratio"] <= high
    assert report["verdict"] == ("less" if high < 1 else "more" if low > 1 else "no measurable difference")
    assert report["profiling_energy_kwh"] > 0
    assert report["profiling_energy_kwh"] == pytest.approx(
        sum(b["joules"] for b in report["bursts"]) / 3.6e6, rel=1e-12
    )
    assert [b["configuration"] for b in report["bursts"] if not b["warmup"]] == [
        "baseline",
        "optimized",
        "optimized",
        "baseline",
    ] * 2
    assert report["energy_method"].startswith("CodeCarbon's model") or "measured" in report["energy_method"]
    assert report["baseline_precision"] == "fp32"


def test_profile_text_and_its_bad_inputs(workspace):
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    missing = profile_command(check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == (
        "carbon-pipe: error: stages/fetch-data/dataset.pt: not found; run `carbon-pipe fetch-data` "
        "(or `dvc repro fetch-data`) first"
    )
    write_params(workspace, tiny_params(profile={**QUICK_PROFILE, "rounds": 5}))
    odd = profile_command(check=False)
    assert odd.returncode == 2
    assert odd.stderr.strip() == (
        "carbon-pipe: error: params.yaml: profile.rounds: must be even (each round's order mirrors the one before, "
        "ABBA), got 5"
    )
    synthetic_dataset()
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    text = profile_command().stdout
    assert "optimized / baseline, energy per sample: " in text
    assert "4 rounds of alternating bursts (ABBA order), 1 warm-up round(s) discarded" in text


@pytest.mark.slow
def test_the_stability_benchmark_reports_verdicts_and_the_budget(mnist_mirror):
    from .test_benchmarks import bench

    output = bench("profile_stability.py", "--runs", "2", "--train-samples", "2048", "--epochs", "1", "--no-load")
    assert "verdicts agree: " in output and "every interval contains the median: " in output
    assert "profiling / baseline run: energy " in output
    runs = [line for line in output.splitlines() if line.lstrip().startswith(("1 ", "2 ")) and "[" in line]
    assert len(runs) == 2 and re.search(r"^[01] of 1 set\(s\) of 2 runs: same verdict", output, re.M)
