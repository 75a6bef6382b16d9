"""Energy charged from the process tree: real CPU-time readings of this process and its children, the coefficients'
arithmetic, and CodeCarbon's meter charging a run by them where no RAPL counter is readable."""

import subprocess
import sys
import time

import psutil
import pytest

from carbon_pipe.emissions import attribution
from carbon_pipe.emissions.attribution import Coefficients, TreeEnergy, Usage, tree_usage
from carbon_pipe.profiling import counters

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.slow
def test_the_tree_counts_this_process_and_children_that_have_exited():
    before = tree_usage()
    spin(0.2)
    subprocess.run([sys.executable, "-c", SPIN.format(seconds=0.3)], check=True)
    after = tree_usage()
    # this process's 0.2 s, the child's 0.3 s of spinning (its interpreter's start-up on top)
    assert after.cpu_seconds - before.cpu_seconds >= 0.5
    assert after.rss_bytes > 10 * 2**20


def test_the_tree_counts_a_live_child_as_it_runs():
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=60)])
    try:
        first, child_first = tree_usage(), psutil.Process(child.pid).cpu_times()
        deadline = time.monotonic() + 30
        while psutil.Process(child.pid).cpu_times().user - child_first.user < 0.2 and time.monotonic() < deadline:
            time.sleep(0.1)  # however loaded the machine, until the child has spun a fifth of a second
        # The child's own readings inside the tree's: what it spun between them is within the tree's interval
        child_second, second = psutil.Process(child.pid).cpu_times(), tree_usage()
    finally:
        child.kill()
        child.wait()
    spun = child_second.user + child_second.system - child_first.user - child_first.system
    assert spun >= 0.2 and second.cpu_seconds - first.cpu_seconds >= spun  # the child's time is the tree's
    assert second.rss_bytes > psutil.Process().memory_info().rss  # the child's resident memory counts too


def test_charged_energy_is_cpu_seconds_and_memory_over_time_by_the_coefficients():
    readings = iter([Usage(10.0, 2 * 2**30), Usage(12.5, 4 * 2**30), Usage(12.5, 4 * 2**30)])
    clock = iter([0.0, 10.0, 30.0])
    tree = TreeEnergy(Coefficients(4.0, 0.375, "test"), read=lambda: next(readings), clock=lambda: next(clock))
    cpu, ram = tree.joules()
    assert cpu == pytest.approx(2.5 * 4.0)  # 2.5 CPU-seconds at 4 W per busy CPU
    assert ram == pytest.approx(3.0 * 10 * 0.375)  # 3 GB on average (trapezoid) for 10 s at 0.375 W/GB
    cpu, ram = tree.joules()  # idle: no CPU time, memory still held
    assert cpu == pytest.approx(10.0) and ram == pytest.approx(11.25 + 4 * 20 * 0.375)


def test_waiting_is_charged_for_memory_only_and_work_for_its_cpu_time():
    """A neighbour's load stretches wall time; only the memory held is charged per second of it."""
    coefficients = Coefficients(4.0, 0.375, "test")
    waiting = TreeEnergy(coefficients)
    time.sleep(0.3)
    idle_cpu, idle_ram = waiting.joules()
    working = TreeEnergy(coefficients)
    spin(0.3)
    busy_cpu, _ = working.joules()
    assert idle_cpu < 0.05 * 4.0  # sleeping costs (almost) no CPU time
    assert idle_ram > 0
    assert busy_cpu == pytest.approx(0.3 * 4.0, rel=0.2)


def test_codecarbon_coefficients_are_its_tdp_over_the_logical_cpus():
    coefficients = attribution.codecarbon_coefficients()
    assert coefficients.cpu_watts > 0 and coefficients.ram_watts_per_gb == 3 / 8
    assert "CodeCarbon's TDP" in coefficients.source
    assert "W per busy logical CPU" in coefficients.describe()


def test_without_rapl_or_a_gpu_counter_the_profile_charges_the_process_tree(tmp_path, monkeypatch):
    def no_counter(device_index):
        raise counters.CounterUnavailable("NVML total-energy counter: NVMLError_NotSupported: Not Supported")

    monkeypatch.setattr(counters, "nvml_energy_reader", no_counter)
    coefficients = Coefficients(4.0, 0.0, "test")  # CPU time only: the memory term follows wall time
    counter = counters.open_counter("cuda", 0, coefficients, powercap=tmp_path)
    assert counter.method.startswith("CPU: process-tree CPU time x 4 W per busy logical CPU; RAM: process-tree")
    assert counter.method.endswith("no direct counter: NVML total-energy counter: NVMLError_NotSupported: Not "
                                   "Supported")
    first = counter.joules()
    spin(0.2)
    assert counter.joules() - first == pytest.approx(0.2 * 4.0, rel=0.25)


@pytest.mark.slow
def test_the_meter_charges_codecarbons_intervals_from_the_tree_and_keeps_its_own_figure(tmp_path):
    from carbon_pipe.emissions.meter import EnergyMeter

    meter = EnergyMeter(tmp_path, "GBR", measure_power_secs=1)
    if meter.coefficients is None:
        pytest.skip("RAPL is readable here: CodeCarbon measures the CPU")
    meter.start()
    spin(1.5)
    reading = meter.stop()
    assert reading.error is None and reading.intervals
    assert "process-tree CPU time" in reading.method and "RAM: CodeCarbon" not in reading.method
    cpu = sum(interval.cpu_energy_kwh for interval in reading.intervals) * 3.6e6
    assert cpu == pytest.approx(1.5 * meter.coefficients.cpu_watts, rel=0.3)
    for interval in reading.intervals:
        assert interval.energy_kwh == pytest.approx(
            interval.cpu_energy_kwh + interval.gpu_energy_kwh + interval.ram_energy_kwh
        )
    ours = sum(interval.energy_kwh for interval in reading.intervals)
    theirs = sum(interval.codecarbon_energy_kwh for interval in reading.intervals)
    assert theirs > ours  # CodeCarbon charges RAM at two DIMMs (about 10 W) for any process
