"""Peak training memory for gradient accumulation 1, 2, 4, 8 at the same effective batch.

    python benchmarks/memory.py [--effective-batch 256] [--steps 8] [--device auto] [--mixed-precision]

Each configuration runs in a fresh process (a process's peak RSS never goes down, so one process cannot measure
several), training params.yaml's model (SimpleCNN) with the pipeline's own Trainer (`build_trainer`, `Trainer.step`:
the same model, optimizer, precision and accumulation as `carbon-pipe train`) on MNIST-shaped uint8 data held on
the device, for a few optimizer steps. On CUDA the figure is the caching allocator's max_memory_allocated (and
reserved) after a reset at the start of training; on CPU it is the process's peak RSS, which includes the
Python/PyTorch runtime and the data, so the table also shows the part added by training (peak minus the RSS just
before the first step).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import project_params  # noqa: E402

ACCUMULATIONS = (1, 2, 4, 8)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effective-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per configuration")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--mixed-precision", action="store_true", help="fp16 autocast on CUDA, bf16 on CPU")
    parser.add_argument("--worker-accumulation", type=int, help=argparse.SUPPRESS)  # one configuration, in this process
    return parser.parse_args()


def measure(args: argparse.Namespace, accumulation: int) -> dict:
    """Train a few steps with micro-batches of effective_batch / accumulation; return the peak memory figures."""
    import psutil
    import torch

    from carbon_pipe.config.params import parse_params
    from carbon_pipe.training import distributed
    from carbon_pipe.training.trainer import DeviceData, Splits, build_trainer

    job = distributed.start(args.device)
    device = job.device
    generator = torch.Generator().manual_seed(0)
    samples = args.effective_batch * args.steps
    images = torch.randint(0, 256, (samples, 1, 28, 28), dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, 10, (samples,), generator=generator).to(device)
    data = DeviceData(images, labels, torch.full((1, 1, 1, 1), 0.1307, device=device),
                      torch.full((1, 1, 1, 1), 0.3081, device=device))
    configuration = {"batch_size": args.effective_batch // accumulation, "gradient_accumulation_steps": accumulation,
                     "mixed_precision": args.mixed_precision}
    params = parse_params(project_params(baseline=configuration))
    torch.manual_seed(0)
    splits = Splits(data, data, [str(d) for d in range(10)], "random")
    trainer = build_trainer(params.model, params.train, params.baseline, splits, job)
    trainer.model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = psutil.Process().memory_info().rss / 2**20
    for group in torch.arange(samples, device=device).split(args.effective_batch):
        trainer.step(data, group)
    result = {"device": device.type, "precision": trainer.precision,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": rss_before}
    if device.type == "cuda":
        result["peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    return result


def main() -> None:
    args = parse_args()
    if args.worker_accumulation:
        print(json.dumps(measure(args, args.worker_accumulation)))
        return
    rows = []
    for accumulation in ACCUMULATIONS:
        command = [sys.executable, __file__, "--effective-batch", str(args.effective_batch), "--steps", str(args.steps),
                   "--device", args.device, "--worker-accumulation", str(accumulation)]
        if args.mixed_precision:
            command.append("--mixed-precision")
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append((accumulation, json.loads(output.strip().splitlines()[-1])))
    first = rows[0][1]
    cuda = first["device"] == "cuda"
    print(f"peak memory on {first['device']}, params.yaml's model, {first['precision']}, "
          f"effective batch {args.effective_batch}, "
          f"{args.steps} optimizer steps per configuration, one process each")
    if cuda:
        print(f"{'accumulation':>12}{'micro-batch':>12}{'allocated MB':>14}{'reserved MB':>13}{'vs x1':>8}")
        for accumulation, result in rows:
            print(
                f"{accumulation:>12}{args.effective_batch // accumulation:>12}{result['peak_allocated_mb']:>14.1f}"
                f"{result['peak_reserved_mb']:>13.1f}{result['peak_allocated_mb'] / first['peak_allocated_mb']:>8.2f}"
            )
        return
    print(f"{'accumulation':>12}{'micro-batch':>12}{'peak RSS MB':>13}{'training MB':>13}{'vs x1':>8}")
    for accumulation, result in rows:
        training = result["peak_rss_mb"] - result["rss_before_mb"]
        baseline_training = first["peak_rss_mb"] - first["rss_before_mb"]
        print(f"{accumulation:>12}{args.effective_batch // accumulation:>12}{result['peak_rss_mb']:>13.1f}"
              f"{training:>13.1f}{training / baseline_training:>8.2f}")
    print("peak RSS includes the Python/PyTorch runtime and the data; 'training MB' = peak minus the RSS before the "
          "first step, the part that accumulation changes")


if __name__ == "__main__":
    main()
