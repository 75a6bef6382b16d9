"""Image files to one uint8 (N, C, H, W) tensor: Pillow decodes each file, converts it to grayscale or RGB, and
resizes its shorter side to data.image_size (bilinear, antialiased) before a centre crop to a square.

Every file is checked before anything is kept, and every unreadable one is named: a folder with three bad files
costs one run, not three.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError

GRAY_MODES = ("1", "L", "LA", "La")
COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")  # palettes count as colour
MAX_LISTED = 10  # unreadable files named, one line each; the rest are counted


def _attempt(path: Path, action: Callable[[Path], Any], problems: dict[Path, str]) -> Any:
    """`action(path)`, or None with the reason it failed recorded in `problems`."""
    try:
        return action(path)
    except DataError as exc:
        problems[path] = str(exc)
    except Exception as exc:  # a decoder meeting arbitrary bytes can raise anything
        cause = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        problems[path] = f"{path}: cannot read the image ({exc.__class__.__name__}: {cause})"
    return None


def _refuse(files: list[Path], problems: dict[Path, str]) -> None:
    """One line per unreadable file, in the order they are stored (the first MAX_LISTED, then a count)."""
    lines = [problems[path] for path in files if path in problems]
    more = [f"... and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else []
    raise DataError("\n".join(lines[:MAX_LISTED] + more))


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        try:
            natural_channels(image)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        return image.mode, image.size


def _pick_channels(modes: Counter, setting: Any) -> int:
    if setting != "auto":
        return int(setting)
    return 1 if all(mode in GRAY_MODES for mode in modes) else 3


def _common_size(headers: dict[Path, tuple[str, tuple[int, int]]], problems: dict[Path, str]) -> tuple[int, int]:
    """Without data.image_size every image must already have one size: each that differs from the first is named."""
    first, (_, size) = next(iter(headers.items()))
    for path, (_, other) in headers.items():
        if other != size:
            problems[path] = (
                f"{path}: {other[0]}x{other[1]} pixels, but {first} is {size[0]}x{size[1]}: "
                "set data.image_size to resize them all"
            )
    return size


def _fit(image, size: int | None):
    """Shorter side to `size`, then the centre square; an image already size x size is left as it is."""
    from PIL import Image

    width, height = image.size
    if size is None or (width, height) == (size, size):
        return image
    scale = size / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def as_array(image, channels: int, size: int | None = None):
    """A Pillow image as an (H, W, channels) uint8 array, fitted to `size` when given."""
    import numpy as np

    if image.mode in ("P", "PA"):  # through RGBA, so a transparent palette entry converts without a warning
        image = image.convert("RGBA")
    image = _fit(image.convert("L" if channels == 1 else "RGB"), size)
    return np.asarray(image).reshape(image.size[1], image.size[0], channels)


def natural_channels(image) -> int:
    """1 for a grayscale image, 3 for colour; a 16-bit or floating-point one is refused."""
    if image.mode not in GRAY_MODES + COLOUR_MODES:
        raise DataError(f"mode {image.mode} (16-bit or floating point); only 8-bit images are read")
    return 1 if image.mode in GRAY_MODES else 3


def _decoded(path: Path, channels: int, size: int | None):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return as_array(image, channels, size)


def read_images(files: list[Path], image_size: int | None, channels_setting: Any) -> tuple[Any, dict[str, int]]:
    """The images as one uint8 (N, C, H, W) tensor, and how many of each Pillow mode were read. Every file is
    decoded before any problem is raised, so that one run names every unreadable file."""
    import numpy as np
    import torch

    problems: dict[Path, str] = {}
    headers = {path: header for path in files if (header := _attempt(path, _header, problems)) is not None}
    if not headers:
        _refuse(files, problems)
    modes = Counter(mode for mode, _ in headers.values())
    channels = _pick_channels(modes, channels_setting)
    width, height = (image_size, image_size) if image_size else _common_size(headers, problems)
    stacked = np.empty((len(files), height, width, channels), dtype=np.uint8)
    for index, path in enumerate(files):
        if path in headers and path not in problems:
            decoded = _attempt(path, lambda path: _decoded(path, channels, image_size), problems)
            if decoded is not None:
                stacked[index] = decoded
    if problems:
        _refuse(files, problems)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(), dict(sorted(modes.items()))
