"""Learning to Look's LeNet with a global-average-pooling head.

conv 3->6 (5x5), ReLU, maxpool 2, conv 6->16 (5x5), ReLU, maxpool 2, GAP, Linear(16, 10).
Input 3x32x32 in [-1, 1] (``size`` sets another input side, e.g. 64 for 64 px benchmarks; the
GAP head takes any size). CAM is taken on conv2's pre-ReLU output (10x10 at 32 px).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lookright.models.base import MODELS, InputSpec


class LeNetGAP(nn.Module):
    cam_layer = "conv2"
    classifier = "fc"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, size: int = 32) -> None:
        super().__init__()
        if size < 16:
            raise ValueError(f"LeNet needs inputs of at least 16 px, got size={size}")
        self.input_spec = InputSpec(size=size, channels=in_channels)
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.mean(dim=(2, 3)))


MODELS.register("lenet")(LeNetGAP)
