"""Write the example's tiny image folder: two classes of noisy 8-bit RGB images with a bright band across
(`horizontal`) or down (`vertical`) the middle, each between 18 and 24 pixels square, so that fetch-data has
something to resize to data.image_size. The same seed writes the same files.

    python make_images.py                      # data/images/{train,test}/{horizontal,vertical}/000.png ...
    python make_images.py --train 500 --test 100 --out data/bigger
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("horizontal", "vertical")


def band_image(rng: np.random.Generator, label: str) -> Image.Image:
    size = int(rng.integers(18, 25))
    pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    middle = slice(size // 2 - 2, size // 2 + 2)
    band = pixels[middle, :] if label == "horizontal" else pixels[:, middle]
    band += np.array([150, 120, 60], dtype=np.uint8)  # at most 89 + 150: no overflow
    return Image.fromarray(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/images"), help="the folder data.path names")
    parser.add_argument("--train", type=int, default=40, help="training images per class")
    parser.add_argument("--test", type=int, default=10, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for split, count in (("train", args.train), ("test", args.test)):
        for label in CLASSES:
            folder = args.out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                band_image(rng, label).save(folder / f"{index:03d}.png")
    print(f"wrote {2 * (args.train + args.test)} images under {args.out}")


if __name__ == "__main__":
    main()
