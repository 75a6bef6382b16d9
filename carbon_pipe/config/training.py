"""The params sections of how a configuration trains and is measured: train, energy, baseline and optimized,
profile, and command (`carbon-pipe run`). Pydantic only, as the rest of the schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, Field, PlainValidator, ValidationInfo

from .base import Count, PositiveSeconds, Section


class TrainParams(Section):
    epochs: Count = 6
    learning_rate: Annotated[float, Field(gt=0)] = 3e-3
    lr_schedule: Literal["onecycle", "constant"] = "onecycle"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_batch_size: Count = 1000
    checkpoint_every: Count = 200  # optimizer steps between resume checkpoints
    steady_allocator: bool = True  # pin glibc malloc's thresholds (training/allocator.py)


class EnergyParams(Section):
    # CodeCarbon measures in a thread: under half a second it falls over itself (tracebacks from the thread)
    measure_power_secs: Annotated[float, Field(ge=0.5, le=3600)] = 5.0
    # for CodeCarbon's static-average reference figure only
    country_iso_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBR"
    # SCI's embodied share: the hardware's manufacturing and disposal emissions over its service life (estimates)
    embodied_kg: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = 1000.0
    lifetime_years: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 4.0


def _mixed_precision(value: Any) -> Any:
    if isinstance(value, bool) or value in ("bf16", "fp16"):
        return value
    raise ValueError(f"expected true, false, bf16 or fp16, got {value!r}")


class RunParams(Section):
    """How a configuration trains; the defaults are the baseline's, the carbon-unaware reference."""

    batch_size: Count = 64
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] = 1
    # true: fp16 + GradScaler on CUDA, bf16 on CPUs with bf16; or name one: bf16 | fp16 (CUDA only)
    mixed_precision: Annotated[Union[bool, Literal["bf16", "fp16"]], PlainValidator(_mixed_precision)] = False
    compile: bool = False        # torch.compile the model
    channels_last: bool = False  # NHWC memory format for the model and its input batches

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps

    def configuration_fields(self) -> dict[str, Any]:
        """How it trains: the fields a configuration is made of (not how one is chosen)."""
        return self.model_dump(include=set(RunParams.model_fields))


def _only_for_auto(value: Any, info: ValidationInfo) -> Any:
    if value is not None and info.data.get("choose") == "explicit":
        raise ValueError("only read when optimized.choose is auto")
    return value


class OptimizedParams(RunParams):
    """The carbon-aware run: the configuration given (explicit), or the one `carbon-pipe train` measures to be the
    cheapest per sample within a memory budget (auto; profiling/candidates.py)."""

    # The defaults: the baseline's effective batch of 64 in steps of 16, with mixed precision.
    batch_size: Count = 16
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] = 4
    mixed_precision: Annotated[Union[bool, Literal["bf16", "fp16"]], PlainValidator(_mixed_precision)] = True
    choose: Literal["explicit", "auto"] = "explicit"  # before memory_budget_mb, which is checked against it
    memory_budget_mb: Annotated[
        Optional[Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]], AfterValidator(_only_for_auto)
    ] = None
    auto_compile: Literal["gpu", "always", "never"] = "gpu"  # auto: which candidates try torch.compile

    def deciding_fields(self) -> dict[str, Any]:
        """What decides how the run trains: the configuration (explicit), or how one is chosen (auto)."""
        if self.choose == "explicit":
            return self.configuration_fields()
        return self.model_dump(include={"choose", "memory_budget_mb", "auto_compile"})


def _even(rounds: int) -> int:
    if rounds % 2:
        raise ValueError(f"must be even (each round's order mirrors the one before, ABBA), got {rounds}")
    return rounds


class ProfileParams(Section):
    """The paired energy profile (profiling/measure.py). Bounded so that no value runs for hours: at most 12
    processes x (10 warm-up + 40 measured rounds) x the configurations x 5 s bursts, and the budget stops it sooner."""

    processes: Annotated[int, Field(ge=3, le=12)] = 6  # the most fresh worker processes (it looks from the third)
    rounds: Annotated[Count, Field(le=40), AfterValidator(_even)] = 2  # measured rounds in each process
    warmup_rounds: Annotated[Count, Field(le=10)] = 1
    burst_seconds: Annotated[float, Field(gt=0, le=5)] = 0.15
    budget_pct: Annotated[float, Field(gt=0, le=100)] = 10.0  # of the baseline's expected training energy
    settle_within_pct: Annotated[float, Field(gt=0, le=50)] = 5.0  # no difference is settled inside 1 +- this %
    twin_extra_work_pct: Annotated[float, Field(gt=0, le=300)] = 25.0  # the sensitivity twin's extra work per sample
    before_training: bool = True  # train-optimized profiles first, as the run's first measured segment
    spread: bool = True  # train-optimized runs the later processes between equal shares of its steps


class CommandParams(Section):
    """`carbon-pipe run`: how a command of your own is paused at a chunk's end."""

    grace_period: PositiveSeconds = 30.0  # after SIGTERM, how long the command may take to exit before it is killed
