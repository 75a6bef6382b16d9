"""`carbon-pipe train` under torchrun: two CPU processes with gloo train the same model as one process does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from carbon_pipe.config.params import parse_params
from carbon_pipe.pipeline import wait_for_window

from ..conftest import REPO, run_training, synthetic_dataset, tiny_params, write_params

# 225 = 7 effective batches of 32 + 1 sample: in the last step rank 1's share is empty and it must still take part.
TRAIN_SAMPLES = 225


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_trains(workspace):
    shutil.copytree(REPO / "custom_models", workspace / "custom_models", ignore=shutil.ignore_patterns("__pycache__"))
    params = tiny_params(
        model={"class": "custom_models.mlp:MLP", "kwargs": {"hidden": 32}},  # no dropout: the ranks' RNGs do not matter
        train={"epochs": 2},
        baseline={
            "batch_size": 8,
            "gradient_accumulation_steps": 4,
        },  # each rank: 16 of 32, two micro-batches (no_sync)
    )
    write_params(workspace, params)
    synthetic_dataset(train=TRAIN_SAMPLES, test=128, size=12)
    wait_for_window.run_stage(parse_params(params), say=lambda line: None)
    single = run_training(parse_params(params), "baseline").to_json()
    single_model = torch.load(workspace / "stages/train-baseline/model.pt", weights_only=True)

    result = subprocess.run(
        # `--` ends torchrun's own options: its parser would take --run for an abbreviation of --run-path
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "carbon_pipe.cli", "--", "train", "--run", "baseline"],
        cwd=workspace, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("train baseline: accuracy") == 1  # rank 0 reports, rank 1 does not

    summary = json.loads((workspace / "metrics/baseline.json").read_text())
    assert summary["world_size"] == 2 and summary["model_class"] == "custom_models.mlp:MLP"
    # The same effective batches, split over two ranks: the same training up to float summation order.
    assert summary["training_metrics"]["final_accuracy"] == pytest.approx(
        single["training_metrics"]["final_accuracy"], abs=2.0
    )
    assert summary["training_metrics"]["final_loss"] == pytest.approx(
        single["training_metrics"]["final_loss"], rel=1e-3
    )
    distributed_model = torch.load(workspace / "stages/train-baseline/model.pt", weights_only=True)
    for name, weights in single_model.items():
        torch.testing.assert_close(distributed_model[name], weights, rtol=1e-3, atol=1e-4)

    epochs = pd.read_csv(workspace / "stages/train-baseline/epochs.csv")
    assert list(epochs["epoch"]) == [1, 2]  # written once, by rank 0
    rows = pd.read_csv(workspace / "stages/train-baseline/energy_intervals.csv")
    carbon = summary["carbon_metrics"]
    assert len(rows) >= 1 and set(rows["node"]) == {0}  # one tracker for the node, not one per rank
    assert rows["emissions_kg"].sum() == pytest.approx(carbon["total_emissions_kg"], rel=1e-12)
    assert len(summary["memory_metrics"]["per_rank_peak_memory_mb"]) == 2
    assert not (workspace / "stages/train-baseline/resume").exists()


CASES = [(64, 16), (22, 8), (1, 4)]  # (effective batch, micro-batch); 1 sample over 2 ranks leaves rank 1 empty


def ddp_gradients(rank: int, port: int, out: str) -> None:
    """One rank of a 2-process gloo group: accumulate each case's gradients through DDP; rank 0 saves them."""
    import os
    from contextlib import nullcontext

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from carbon_pipe.training.trainer import accumulate_gradients

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = DistributedDataParallel(reference_model())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    data, order = gradient_data()
    results = []
    for group_size, micro in CASES:
        model.zero_grad(set_to_none=True)
        group = order[:group_size]
        accumulate_gradients(model, data, group[rank::2], group_size, micro, nullcontext, scaler, world_size=2)
        results.append([parameter.grad.clone() for parameter in model.module.parameters()])
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def reference_model():
    from carbon_pipe.training.model import SimpleCNN

    torch.manual_seed(0)
    return SimpleCNN(image_size=12, width=4, hidden=16).eval()  # eval: no dropout, the same function on every rank


def gradient_data():
    from carbon_pipe.training.trainer import DeviceData

    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (80, 1, 12, 12), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (80,), generator=generator)
    return DeviceData(images, labels, torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.25)), torch.randperm(
        80, generator=generator
    )


@pytest.mark.slow
def test_ddp_accumulation_gives_the_big_batch_gradient(tmp_path, unused_port):
    """The exact check Adam would hide: DDP's synced gradient equals one process's gradient of the whole batch."""
    from contextlib import nullcontext

    import torch.multiprocessing

    from carbon_pipe.training.trainer import accumulate_gradients

    torch.multiprocessing.spawn(ddp_gradients, args=(unused_port, str(tmp_path / "grads.pt")), nprocs=2)
    distributed_results = torch.load(tmp_path / "grads.pt", weights_only=True)

    model = reference_model()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    data, order = gradient_data()
    for (group_size, _), synced in zip(CASES, distributed_results):
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, data, order[:group_size], group_size, group_size, nullcontext, scaler)
        for parameter, gradient in zip(model.parameters(), synced):
            torch.testing.assert_close(gradient, parameter.grad, rtol=1e-5, atol=1e-7)
