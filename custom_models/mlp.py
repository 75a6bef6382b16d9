"""An example custom model: a two-layer perceptron. Select it with

    model:
      class: "custom_models.mlp:MLP"
      kwargs: {hidden: 256}

The pipeline passes in_channels, image_size and num_classes from the dataset because the constructor names them.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_channels: int, image_size: int, num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)
