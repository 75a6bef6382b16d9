"""carbon-pipe: carbon-aware, reproducible PyTorch training with honest emissions accounting.

The Python API (docs/own-project.md) is importable without torch, and is loaded on first use, so that `import
carbon_pipe` stays instant: `track` meters a block or a function and charges each interval at the grid's intensity,
`plan` places a job in the low-carbon window, `wait_for_window` blocks until it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "track": "carbon_pipe.api.metering",
    "Tracked": "carbon_pipe.api.metering",
    "plan": "carbon_pipe.api.windows",
    "wait_for_window": "carbon_pipe.api.windows",
    "WindowPlan": "carbon_pipe.api.windows",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'carbon_pipe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)
