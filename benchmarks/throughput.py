"""Training throughput in one run: the pipeline's loop vs a bare PyTorch loop vs per-sample torchvision transforms.

    python benchmarks/throughput.py [--train-samples 8192] [--epochs 3] [--batch-size 64] [--device auto]

All three train SimpleCNN with Adam in fp32 on the same MNIST subset and batch size, on the same device, each with
the model and optimizer the pipeline builds for the baseline configuration (`build_trainer`):

- pipeline: `carbon-pipe train`'s own loop (train-baseline's stage: uint8 tensors on the device, per-batch
  normalisation, exact accumulation, LR schedule, progress bar, step checkpoints, CodeCarbon running); its
  samples/s is what epochs.csv reports (training part of each epoch);
- bare: the shortest loop a PyTorch user writes over the same data pre-normalised as one float tensor;
- per-sample: torchvision's MNIST dataset with ToTensor + Normalize through a DataLoader, as the reference
  implementation did (a PIL image per sample).

The first epoch of each run is warm-up; a run's figure is the median of its other epochs. The runs alternate
(bare, pipeline, bare, pipeline, ..., bare) and each pipeline run is compared with the mean of the bare runs on
either side of it, so a change in machine load during the benchmark biases neither side; the reported ratio is
the median over rounds. Goal: pipeline / bare >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import project_params, scratch_project  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3, help="per loop; the first is warm-up (at least 2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="pipeline runs, each bracketed by bare runs")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is warm-up)")
    return args


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_epochs(epochs: int, samples: int, device: torch.device, one_epoch) -> float:
    """Median samples/s of the epochs after the first."""
    rates = []
    for epoch in range(epochs):
        synchronize(device)
        started = time.perf_counter()
        one_epoch()
        synchronize(device)
        if epoch > 0:
            rates.append(samples / (time.perf_counter() - started))
    return statistics.median(rates)


def model_and_optimizer(make_trainer):
    """A fresh model (seed 0) and its Adam, as the pipeline builds them; the loops around them stay bare."""
    torch.manual_seed(0)
    trainer = make_trainer()
    return trainer.model.train(), trainer.optimizer


def bare_loop(images: torch.Tensor, labels: torch.Tensor, args, make_trainer, device) -> float:
    model, optimizer = model_and_optimizer(make_trainer)

    def one_epoch() -> None:
        for batch in torch.randperm(len(labels), device=device).split(args.batch_size):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()

    return timed_epochs(args.epochs, len(labels), device, one_epoch)


def per_sample_loop(args, make_trainer, device) -> float:
    import tempfile

    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    from carbon_pipe.datasets.catalog import DATASETS
    from carbon_pipe.datasets.torchvision import load_torchvision

    spec = DATASETS["mnist"]
    with tempfile.TemporaryDirectory() as root:
        train, _ = load_torchvision("mnist", Path(root))
        train.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])
        loader = DataLoader(Subset(train, range(args.train_samples)), batch_size=args.batch_size, shuffle=True)
        model, optimizer = model_and_optimizer(make_trainer)

        def one_epoch() -> None:
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(images), labels).backward()
                optimizer.step()

        return timed_epochs(args.epochs, args.train_samples, device, one_epoch)


def main() -> None:
    args = parse_args()
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.layout import DATASET_FILE
    from carbon_pipe.pipeline import train_baseline
    from carbon_pipe.training import distributed
    from carbon_pipe.training.trainer import Splits, build_trainer

    params = project_params(
        data={"train_limit": args.train_samples, "test_limit": 1000},
        train={"epochs": args.epochs, "device": args.device},
        baseline={"batch_size": args.batch_size, "gradient_accumulation_steps": 1, "mixed_precision": False},
    )
    config = parse_params(params)
    job = distributed.start(args.device)
    device = job.device
    torch.use_deterministic_algorithms(True)  # as the pipeline runs, so every loop uses the same kernels
    with scratch_project(params, prefix="carbon-pipe-throughput-"):
        splits = Splits.load(DATASET_FILE, device)
        images, labels = splits.train.batch(slice(None))  # the bare loop's data: normalised once, up front

        def make_trainer():
            return build_trainer(config.model, config.train, config.baseline, splits, job)

        def bare() -> float:
            return bare_loop(images, labels, args, make_trainer, device)

        bare_rates, pipeline_rates = [bare()], []
        for _ in range(args.rounds):
            summary = train_baseline.run_stage(config)
            epochs = pd.read_csv("stages/train-baseline/epochs.csv")
            pipeline_rates.append(statistics.median(epochs["samples_per_second"].iloc[1:]))
            bare_rates.append(bare())
        per_sample = per_sample_loop(args, make_trainer, device)

    ratios = [rate / ((before + after) / 2) for rate, before, after in zip(pipeline_rates, bare_rates, bare_rates[1:])]
    bare_rate = statistics.median(bare_rates)
    rates = {
        "bare PyTorch loop (tensors)": bare_rate,
        "carbon-pipe train loop": statistics.median(pipeline_rates),
        "per-sample ToTensor/Normalize": per_sample,
    }
    print(f"throughput on {summary.device} ({torch.get_num_threads()} torch threads), MNIST {args.train_samples} "
          f"train samples, batch {args.batch_size}, fp32; median samples/s of epochs 2..{args.epochs}, "
          f"{args.rounds} pipeline runs between {args.rounds + 1} bare runs")
    print(f"{'loop':<32}{'samples/s':>12}{'vs bare':>10}")
    for name, rate in rates.items():
        print(f"{name:<32}{rate:>12.1f}{rate / bare_rate:>10.3f}")
    ratio = statistics.median(ratios)
    print(f"pipeline / bare, each run against the bare runs beside it: {ratio:.3f} (rounds: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; goal >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
    print(f"pipeline / per-sample transforms: {rates['carbon-pipe train loop'] / per_sample:.2f}x")


if __name__ == "__main__":
    main()
