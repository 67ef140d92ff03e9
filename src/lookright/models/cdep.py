"""The CNNs CDEP used for ColorMNIST (3 channels) and DecoyMNIST (1 channel), 28x28 inputs.

conv C->20 (5x5), ReLU, maxpool 2, conv 20->50 (5x5), ReLU, maxpool 2, flatten,
Linear(800, hidden), ReLU, Linear(hidden, 10); ``hidden`` is 500 by default (CDEP's ColorMNIST
net) and 256 in CDEP's DecoyMNIST recipe (``configs/decoymnist-cdep-recipe-*.yaml``). No GAP head, so CAM does not apply: use Grad-CAM
on ``conv2`` (4 x 4 after pooling; 8 x 8 before).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lookright.models.base import MODELS, InputSpec


class CDEPNet(nn.Module):
    cam_layer = "conv2"
    classifier = None  # no GAP head: CAM is undefined, Grad-CAM works

    def __init__(self, in_channels: int = 3, num_classes: int = 10, hidden: int = 500) -> None:
        super().__init__()
        self.input_spec = InputSpec(size=28, channels=in_channels)
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@MODELS.register("cdep-colormnist")
def cdep_colormnist(num_classes: int = 10, hidden: int = 500) -> CDEPNet:
    return CDEPNet(in_channels=3, num_classes=num_classes, hidden=hidden)


@MODELS.register("cdep-decoymnist")
def cdep_decoymnist(num_classes: int = 10, hidden: int = 500) -> CDEPNet:
    return CDEPNet(in_channels=1, num_classes=num_classes, hidden=hidden)
