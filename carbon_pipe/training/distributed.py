"""One process or many: under `torchrun` each process is a rank of a DistributedDataParallel job, else a job of one.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK (the node) and the rendezvous address;
`init_process_group` reads them from the environment. Every collective below is a no-op in a job of one.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from ..artifacts import holding
from ..errors import Busy, CarbonPipeError, UsageError
from ..signals import stop_requests

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Job:
    rank: int
    world_size: int
    local_rank: int
    node: int
    device: Optional[torch.device]  # None: a command's job (`carbon-pipe run`), which holds no device of its own

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the artifacts and metrics."""
        return self.rank == 0

    @property
    def tracks_energy(self) -> bool:
        """One energy tracker per node: local rank 0 measures the whole node."""
        return self.local_rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a device tensor over all ranks, in place."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def max(self, value: float) -> float:
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        return self.max(1.0 if flag else 0.0) > 0

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("train.device is 'cuda' but no CUDA device is available")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def one_process(device: Optional[torch.device]) -> Job:
    """A job of one process on `device` (the profile, the benchmarks, a command), outside torchrun."""
    return Job(0, 1, 0, 0, device)


def start(requested_device: str) -> Job:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return one_process(pick_device(requested_device))
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ["LOCAL_RANK"])
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Job(dist.get_rank(), world_size, local_rank, int(os.environ.get("GROUP_RANK", "0")), device)


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def running(requested_device: str, folder: Path, what: str) -> Iterator[Job]:
    """The job's process group for the block, holding the run's `folder` for the whole job (artifacts.holding),
    with SIGTERM and SIGINT recorded from start to end (signals.stop_requests): a signal between two segments, or
    while one is set up, stops the next one after its first step, checkpointed, instead of killing the process.

    One lock per job, not per rank: rank 0 takes it (the folder may be shared by every node) and every rank waits
    for that before going on; if another process holds it, every rank stops with rank 0's line.
    """
    job = start(requested_device)
    try:
        with contextlib.ExitStack() as held, stop_requests():
            refusal = None
            if job.is_main:
                try:
                    held.enter_context(holding(folder, what))
                except CarbonPipeError as exc:
                    refusal = exc
            refused = job.gather(str(refusal) if refusal else None)[0]
            if refusal is not None:
                raise refusal
            if refused is not None:
                raise Busy(refused)
            yield job
    finally:
        stop()
