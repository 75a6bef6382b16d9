"""carbon-pipe profile: the energy counters (RAPL on a fake sysfs, NVML faked at its reader) and the real command, its
fresh worker processes, checks and budget."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from carbon_pipe.emissions.attribution import Coefficients
from carbon_pipe.profiling import counters

from ..conftest import synthetic_dataset, tiny_params, write_params

QUICK_PROFILE = {"processes": 3, "rounds": 2, "warmup_rounds": 1, "burst_seconds": 0.05}
COEFFICIENTS = Coefficients(4.0, 0.375, "test")


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
    counter = counters.open_counter("cpu", 0, COEFFICIENTS, powercap=tmp_path)
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
    alone = counters.open_counter("cuda", 0, COEFFICIENTS, powercap=tmp_path)
    assert isinstance(alone, counters.NvmlCounter)
    assert alone.method.startswith("GPU 0: NVML total-energy counter (measured); CPU and RAM not counted (RAPL: no")
    zone(tmp_path, "intel-rapl:0", "package-0", 0)
    both = counters.open_counter("cuda", 0, COEFFICIENTS, powercap=tmp_path)
    assert both.method == "GPU 0: NVML total-energy counter (measured); CPU: RAPL counters (measured: package-0)"


def profile_command(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "carbon_pipe.cli", "profile", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_profile_json_is_consistent_with_its_bursts(workspace):
    """Each fresh worker process runs its warm-up and its ABBA rounds; the figures are the burst table summarised
    across processes, and what the profile spent is counted against its budget."""
    synthetic_dataset()
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    result = profile_command("--json")
    report = json.loads(result.stdout)
    for key in ("baseline_j_per_sample", "optimized_j_per_sample", "ratio", "ratio_ci95", "verdict", "verdict_text",
                "energy_method", "profiling_energy_kwh", "bursts", "baseline_s_per_sample_ci95", "processes",
                "stopping"):
        assert key in report, key
    assert report["ratio"] == pytest.approx(
        report["optimized_j_per_sample"] / report["baseline_j_per_sample"], rel=1e-12
    )
    low, high = report["ratio_ci95"]
    assert low <= report["ratio"] <= high
    assert report["verdict"] == ("less" if high < 1 else "more" if low > 1 else "no measurable difference")
    assert report["processes"] == 3 and report["rounds"] == 2  # the tiny job's budget: the first look's three
    assert {b["process"] for b in report["bursts"]} == {0, 1, 2}
    for process in range(3):  # every other process in reverse order (and each at its own memory layout)
        measured = [b["configuration"] for b in report["bursts"] if b["process"] == process and not b["warmup"]]
        first, second = ("baseline", "optimized") if process % 2 == 0 else ("optimized", "baseline")
        assert measured == [first, second, second, first]
    stopping = report["stopping"]
    assert stopping["planned_processes"] == 3 and stopping["reason"] in ("settled", "every planned process run")
    assert stopping["spent_joules"] > report["profiling_energy_kwh"] * 3.6e6 > 0  # start-up costs on top of bursts
    assert "process-tree" in report["energy_method"] or "measured" in report["energy_method"]
    assert report["baseline_precision"] == "fp32"
    assert re.search(r"^profile: process 3 of at most 3: 4 bursts, 2 rounds$", result.stderr, re.M)  # progress


@pytest.mark.slow
def test_profile_text_checks_and_bad_inputs(workspace):
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    missing = profile_command(check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines()[-1] == (
        "carbon-pipe: error: stages/fetch-data/dataset.pt: not found; run `carbon-pipe fetch-data` "
        "(or `dvc repro fetch-data`) first"
    )
    write_params(workspace, tiny_params(profile={**QUICK_PROFILE, "rounds": 1_000_000}))
    endless = profile_command(check=False)
    assert endless.returncode == 2
    assert endless.stderr.strip() == (
        "carbon-pipe: error: params.yaml: profile.rounds: Input should be less than or equal to 40"
    )
    write_params(workspace, tiny_params(profile=QUICK_PROFILE))
    wrong = profile_command("--check", "ab", check=False)
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "carbon-pipe: error: --check: 'ab' is not one of aa, sensitivity"
    )
    synthetic_dataset()
    text = profile_command("--check", "sensitivity").stdout
    assert "3 fresh worker process(es) x 2 rounds of alternating bursts (ABBA order)" in text
    assert "twin / baseline, energy per sample: " in text
    assert re.search(r"^check sensitivity: expected more \(work ratio 1\.250\), got ", text, re.M)
    assert re.search(r"^stopped: .* after 3 of at most 3 processes", text, re.M)


@pytest.mark.slow
def test_the_verdict_checks_benchmark_prints_coverage_aa_and_budget(mnist_mirror, tmp_path):
    """Its figures, and the same A/A and budget lines again from the profiles it saved, without profiling."""
    from ..test_benchmarks import bench

    saved = tmp_path / "profiles.jsonl"
    output = bench("verdict_checks.py", "--only", "coverage,aa,budget", "--runs", "1", "--seeds", "40",
                   "--train-samples", "1024", "--epochs", "1", "--save", str(saved))
    assert re.search(r"^ratio 1.0, variation 5%, at most 6, budget 6: stage-wise \(reported\) \d+ of 40 \(", output,
                     re.M)
    assert re.search(r"^as the machine is: \d of 1 .* say no measurable difference", output, re.M)
    assert re.search(r"^beside a busy core: \d of 1 ", output, re.M)
    assert re.search(r"^median [\d.]+ \([\d.]+-[\d.]+, n=2\) % \(budget 10", output, re.M)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [(line["section"], line["where"]) for line in lines] == [("aa", "quiet"), ("aa", "busy")]
    again = bench("verdict_checks.py", "--from-saved", f"aa={saved}")
    def a_a_and_budget(text: str) -> str:  # below the A/A heading (which says how many ran, or "saved")
        return text.split("## A/A")[1].split("\n", 1)[1].split("load average")[0]

    assert a_a_and_budget(again) == a_a_and_budget(output)


def profile_workers(pid: int) -> list:
    """The profile's worker processes among a process's children (one that just ended, not yet reaped, is none)."""
    import psutil

    workers = []
    for child in psutil.Process(pid).children():
        try:
            if "carbon_pipe.profiling.worker" in child.cmdline():
                workers.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            pass
    return workers


@pytest.mark.slow
def test_a_killed_worker_process_fails_the_profile_in_one_line(workspace):
    """A worker killed from outside (out of memory, an operator): one line naming it, exit 1, nothing printed."""

    synthetic_dataset()
    write_params(workspace, tiny_params(profile={**QUICK_PROFILE, "burst_seconds": 0.5}))
    command = subprocess.Popen([sys.executable, "-m", "carbon_pipe.cli", "profile"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    killed = False
    while not killed and time.monotonic() < deadline and command.poll() is None:
        for worker in profile_workers(command.pid):
            worker.kill()
            killed = True
        time.sleep(0.05)
    stdout, stderr = command.communicate(timeout=120)
    assert killed and command.returncode == 1 and stdout == ""
    assert stderr.strip().splitlines()[-1] == "carbon-pipe: error: profile worker process 1 failed (exit code -9)"


@pytest.mark.slow
def test_ctrl_c_during_a_worker_ends_the_profile_and_its_worker_at_once(workspace):
    """A worker runs in a session of its own (the parent decides what a signal stops); on Ctrl-C the parent ends
    it, leaves nothing running, and says it was interrupted."""
    import psutil

    synthetic_dataset()
    write_params(workspace, tiny_params(profile={**QUICK_PROFILE, "burst_seconds": 2}))
    # SIGINT as a terminal's command has it: a shell's background job (a CI run started with &) inherits it ignored
    command = subprocess.Popen([sys.executable, "-m", "carbon_pipe.cli", "profile"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    workers = []
    while not workers and time.monotonic() < deadline and command.poll() is None:
        workers = profile_workers(command.pid)
        time.sleep(0.05)
    assert workers, "no worker process started"
    command.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    stdout, stderr = command.communicate(timeout=60)
    assert time.monotonic() - interrupted < 10  # not the rest of the worker's 2-second bursts, one after another
    assert command.returncode == 128 + signal.SIGINT and stdout == ""
    assert stderr.strip().splitlines()[-1] == "carbon-pipe: interrupted"
    assert not psutil.pid_exists(workers[0].pid) or workers[0].status() == psutil.STATUS_ZOMBIE
