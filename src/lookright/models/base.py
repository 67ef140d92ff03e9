"""What a classifier tells the rest of lookright: its input format and where CAM lives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lookright.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


@dataclass(frozen=True)
class InputSpec:
    """Input format: ``x = (resize(u8 / 255, size) - mean) / std`` with ``channels`` channels.

    Grey images are repeated to 3 channels when the model wants 3.
    """

    size: int
    channels: int
    mean: float = 0.5
    std: float = 0.5

    def prepare(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` -> float model input ``(N, channels, size, size)``."""
        x = images_u8.float().div_(255.0)
        if x.shape[1] != self.channels:
            if x.shape[1] == 1:
                x = x.expand(-1, self.channels, -1, -1)
            else:
                raise ValueError(f"model wants {self.channels} channels, images have {x.shape[1]}")
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return ((x - self.mean) / self.std).contiguous()


def create_model(name: str, **options) -> nn.Module:
    """Build a registered model; it carries ``input_spec``, ``cam_layer`` and ``classifier`` names."""
    return MODELS.create(name, **options)
