"""optimized.choose: auto. Candidates with the baseline's effective batch, their training peak memory, and the choice.

The candidates split the baseline's effective batch two ways (accumulation 1 and 4), in fp32 and each mixed precision
the device supports (bf16 on a CPU with bf16; fp16 and, where supported, bf16 on CUDA), contiguous and channels_last,
and compiled where `optimized.auto_compile` asks (by default on a GPU only: on a CPU, compiling takes longer than the
whole profile). Each one's peak memory is measured first (build and two optimizer steps); those within
`optimized.memory_budget_mb` are profiled paired against the baseline, in the rounds of one ordinary profile (each
round's time shared among them), and the lowest energy per sample is chosen. The memory budget is a hard limit; the
energy is a measurement, so another run may choose otherwise: the choice, the table and why are recorded.
"""

from __future__ import annotations

from itertools import product
from typing import Any, Callable

import torch

from ..config.params import Params
from ..config.training import RunParams
from ..errors import UsageError
from ..training.run_summary import AutoChoice
from .measure import run_profile
from .record import BASELINE
from .result import EnergyProfile
from .steps import TrainSplit, configuration_steps

ACCUMULATIONS = (1, 4)
CUDA_METHOD = (
    "CUDA caching allocator: max_memory_allocated over building the configuration and two optimizer steps, above "
    "what was allocated before, plus the training split on the device"
)
CPU_METHOD = (
    "torch's CPU allocator: the peak of the bytes allocated while building the configuration and making two "
    "optimizer steps (torch.profiler memory events), plus the training split's tensors"
)


def mixed_options(device: torch.device) -> list[Any]:
    """The mixed precisions this device trains in (RunParams.mixed_precision values)."""
    if device.type == "cuda":
        return ["fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return ["bf16"] if bf16 else []


def candidate_runs(params: Params, device: torch.device) -> dict[str, RunParams]:
    """Every candidate by name; the one that is the baseline's own configuration is called baseline."""
    effective, compile_when = params.baseline.effective_batch_size, params.optimized.auto_compile
    splits = [(effective // steps, steps) for steps in ACCUMULATIONS if effective % steps == 0]
    compiled_too = compile_when == "always" or (compile_when == "gpu" and device.type == "cuda")
    compiles = [False, True] if compiled_too else [False]
    runs = {}
    for (batch, steps), mixed, channels_last, compiled in product(splits, [False, *mixed_options(device)],
                                                                  [False, True], compiles):
        run = RunParams(batch_size=batch, gradient_accumulation_steps=steps, mixed_precision=mixed,
                        channels_last=channels_last, compile=compiled)
        name = BASELINE if run.configuration_fields() == params.baseline.configuration_fields() else candidate_name(run)
        runs[name] = run
    return runs


def candidate_name(run: RunParams) -> str:
    precision = run.mixed_precision if run.mixed_precision else "fp32"
    layout = "channels_last" if run.channels_last else "contiguous"
    split = f"{run.batch_size}x{run.gradient_accumulation_steps}"
    return f"{split}-{precision}-{layout}" + ("-compiled" if run.compile else "")


def peak_memory_mb(params: Params, run: RunParams, split: TrainSplit) -> float:
    """The training peak memory of one configuration: built afresh, two optimizer steps (see the methods above)."""
    device = split.data.labels.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        configuration_steps(params, run, split).take(2)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20 + split.megabytes
    return allocated_peak(lambda: configuration_steps(params, run, split).take(2)) / 2**20 + split.megabytes


def allocated_peak(work: Callable[[], Any]) -> int:
    """The most bytes `work` had allocated at once from torch's CPU allocator, from the profiler's memory events."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as recorded:
        work()
    allocations, nodes = [], list(recorded.profiler.kineto_results.experimental_event_tree())
    while nodes:
        node = nodes.pop()
        if node.typed[0] == _EventType.Allocation:
            allocations.append((node.start_time_ns, node.typed[1].alloc_size))  # a free is a negative size
        nodes.extend(node.children)
    held = peak = 0
    for _, size in sorted(allocations):
        held += size
        peak = max(peak, held)
    return peak


def pick(energy: dict[str, float], memory: dict[str, float], budget: float | None) -> str:
    """The candidate with the lowest energy per sample among those whose peak memory is within the budget."""
    fitting = [name for name in energy if budget is None or memory[name] <= budget]
    return min(fitting, key=lambda name: energy[name])


def choose_configuration(params: Params, device: torch.device) -> tuple[str, EnergyProfile, AutoChoice]:
    """(the chosen candidate's name, the paired profile of those within the budget, the choice's record)."""
    runs, budget, split = candidate_runs(params, device), params.optimized.memory_budget_mb, TrainSplit.load(device)
    peak_memory_mb(params, params.baseline, split)  # once unrecorded: one-time allocations (kernel caches) go here
    memory = {name: peak_memory_mb(params, run, split) for name, run in runs.items()}
    fitting = [name for name in runs if budget is None or memory[name] <= budget]
    if not fitting:
        raise UsageError(
            f"optimized.memory_budget_mb: {budget:g} MB fits no candidate (the smallest needs "
            f"{min(memory.values()):.1f} MB: {min(memory, key=memory.get)})"
        )
    profiled = {BASELINE: params.baseline, **{name: runs[name] for name in fitting if name != BASELINE}}
    shared_round = params.profile.burst_seconds * 2 / len(profiled)  # an ordinary profile's round, shared
    profile = run_profile(params, profiled, params.profile.model_copy(update={"burst_seconds": shared_round}))
    energy = {config.name: config.j_per_sample.value for config in profile.configurations if config.name in fitting}
    chosen = pick(energy, memory, budget)
    return chosen, profile, choice_record(params, runs, memory, profile, chosen, device)


def choice_record(
    params: Params, runs: dict[str, RunParams], memory: dict[str, float], profile: EnergyProfile, chosen: str,
    device: torch.device,
) -> AutoChoice:
    budget = params.optimized.memory_budget_mb
    profiled = {config.name: config for config in profile.configurations}
    table = []
    for name, run in runs.items():
        config = profiled.get(name)
        table.append({
            "name": name, **run.configuration_fields(), "precision": config.precision if config else None,
            "peak_memory_mb": memory[name], "within_budget": budget is None or memory[name] <= budget,
            "j_per_sample": config.j_per_sample.value if config else None,
            "j_per_sample_ci95": config.j_per_sample.bounds if config else None,
            "ratio": config.ratio.value if config and config.ratio else (1.0 if config else None),
            "ratio_ci95": config.ratio.bounds if config and config.ratio else None,
            "chosen": name == chosen,
        })
    over = len(runs) - len(profiled)
    return AutoChoice.model_validate({
        "memory_budget_mb": budget,
        "memory_method": CUDA_METHOD if device.type == "cuda" else CPU_METHOD,
        "chosen": chosen,
        "configuration": runs[chosen].configuration_fields(),
        "why": (
            f"the lowest energy per sample of the {len(profiled)} candidates within the memory budget"
            + (f" ({over} over it, not profiled)" if over else "")
            + "; measured, so another run may choose otherwise: pin the configuration (choose: explicit) to reproduce"
        ),
        "candidates": table,
    })
