"""Write the example's tiny dataset: points around one centre per class, with noise, as torch tensors.

The script's own data preparation (the fetch-data stage): deterministic, so the same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch


def make(seed: int, classes: int, features: int, train: int, test: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=generator) * 0.7

    def split(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, classes, (count,), generator=generator)
        points = centres[labels] + torch.randn(count, features, generator=generator) * 2.0
        return points, labels

    train_x, train_y = split(train)
    test_x, test_y = split(test)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/points.pt"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--train", type=int, default=4096)
    parser.add_argument("--test", type=int, default=1024)
    args = parser.parse_args()
    buffer = io.BytesIO()  # through memory: the archive holds no temporary file name
    torch.save(make(args.seed, args.classes, args.features, args.train, args.test), buffer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buffer.getvalue())
    print(f"{args.out}: {args.train} train / {args.test} test points, {args.classes} classes, {args.features} features")


if __name__ == "__main__":
    main()
