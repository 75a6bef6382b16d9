"""Energy counters read at burst boundaries: the most direct one the machine offers, and which one it was.

Each counter reports the joules used since it was opened. In order of preference: the GPU's own total-energy
counter through NVML (when training on CUDA), the CPU's RAPL counters in /sys/class/powercap (where they are
readable: since 2020 most kernels make them root-only), both added up when both are there; otherwise the model
estimate of the process tree's own CPU time and memory (emissions/attribution.py), as the train stages' meter charges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..emissions.attribution import Coefficients, TreeEnergy

POWERCAP = Path("/sys/class/powercap")


class EnergyCounter(Protocol):
    method: str

    def joules(self) -> float:
        """Joules used since the counter was opened."""

    def close(self) -> None: ...


class CounterUnavailable(Exception):
    """This machine does not offer this counter (no device, no driver, no permission); the reason says which."""


def nvml_energy_reader(device_index: int) -> Callable[[], int]:
    """A function reading CUDA device `device_index`'s total-energy counter (millijoules; Volta or newer)."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        try:  # NVML numbers GPUs physically; CUDA_VISIBLE_DEVICES may renumber them, so match by UUID
            uuid = str(torch.cuda.get_device_properties(device_index).uuid)
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        except Exception:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # GPUs without the counter fail here
    except Exception as exc:
        raise CounterUnavailable(f"NVML total-energy counter: {exc.__class__.__name__}: {exc}") from None
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)


class NvmlCounter:
    def __init__(self, read_millijoules: Callable[[], int], device_index: int) -> None:
        self.read = read_millijoules
        self.start = read_millijoules()
        self.method = f"GPU {device_index}: NVML total-energy counter (measured)"

    def joules(self) -> float:
        return (self.read() - self.start) / 1000

    def close(self) -> None:
        pass


class RaplCounter:
    """The package (and DRAM) zones of RAPL; each counter wraps at its max_energy_range_uj."""

    def __init__(self, zones: list[Path]) -> None:
        self.zones = zones
        self.ranges = [int((zone / "max_energy_range_uj").read_text()) for zone in zones]
        self.last = [self.raw(zone) for zone in zones]
        self.total_uj = 0
        self.method = "CPU: RAPL counters (measured: " + ", ".join(zone_name(zone) for zone in zones) + ")"

    @staticmethod
    def raw(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    @classmethod
    def open(cls, root: Path = POWERCAP) -> RaplCounter:
        # Top-level zones are packages (or psys, which overlaps them); DRAM is a sub-zone outside the package's count.
        zones = sorted(
            zone for zone in root.glob("intel-rapl:*")
            if zone_name(zone).startswith("package") or zone_name(zone) == "dram"
        )
        if not zones:
            raise CounterUnavailable(f"RAPL: no package zones under {root}")
        try:
            return cls(zones)
        except (OSError, ValueError) as exc:
            raise CounterUnavailable(f"RAPL: {exc.__class__.__name__}: {exc}") from None

    def joules(self) -> float:
        for index, zone in enumerate(self.zones):
            value = self.raw(zone)
            delta = value - self.last[index]
            self.total_uj += delta if delta >= 0 else delta + self.ranges[index]  # wrapped past its range
            self.last[index] = value
        return self.total_uj / 1e6

    def close(self) -> None:
        pass


def zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


class TreeCounter:
    """The process tree's CPU time and resident memory x power coefficients (emissions/attribution.py): the model
    estimate charged where no counter is readable, the same the train stages' meter charges then."""

    def __init__(self, coefficients: Coefficients, unavailable: list[str]) -> None:
        self.tree = TreeEnergy(coefficients)
        self.method = f"{coefficients.describe()}; no direct counter: " + "; ".join(unavailable)

    def joules(self) -> float:
        return sum(self.tree.joules())

    def close(self) -> None:
        pass


class Sum:
    """Counters of separate components (GPU, CPU package) added up."""

    def __init__(self, counters: list) -> None:
        self.counters = counters
        self.method = "; ".join(counter.method for counter in counters)

    def joules(self) -> float:
        return sum(counter.joules() for counter in self.counters)

    def close(self) -> None:
        for counter in self.counters:
            counter.close()


def open_counter(
    device_type: str, device_index: int, coefficients: Coefficients, powercap: Path = POWERCAP
) -> EnergyCounter:
    """The most direct counters for training on this device; the process tree's model estimate when there are none."""
    if device_type == "cuda":
        try:
            gpu = NvmlCounter(nvml_energy_reader(device_index), device_index)
        except CounterUnavailable as exc:  # RAPL alone would leave out the GPU, where most of the energy goes
            return TreeCounter(coefficients, [str(exc)])
        try:
            return Sum([gpu, RaplCounter.open(powercap)])
        except CounterUnavailable as exc:
            gpu.method += f"; CPU and RAM not counted ({exc})"
            return gpu
    try:
        return RaplCounter.open(powercap)
    except CounterUnavailable as exc:
        return TreeCounter(coefficients, [str(exc)])
