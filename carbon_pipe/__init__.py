"""carbon-pipe: carbon-aware, reproducible PyTorch training with honest emissions accounting."""

__version__ = "0.1.0"
