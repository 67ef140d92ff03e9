"""What a classifier tells the rest of lookright: its input format and where CAM lives.

A created model carries ``input_spec`` (:class:`InputSpec`), ``cam_layer`` (the default layer of
CAM and Grad-CAM) and the name of the linear head CAM weights by, ``None`` when CAM does not
apply: ``classifier`` for the paper models, ``cam_classifier`` for library backbones (where
``classifier`` may be a submodule), which also say why in ``cam_unsupported``.
"""

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

    ``mean`` and ``std`` are one float for every channel or a tuple of one per channel. Grey
    images are repeated to 3 channels when the model wants 3; resizing is bilinear.
    """

    size: int
    channels: int
    mean: float | tuple[float, ...] = 0.5
    std: float | tuple[float, ...] = 0.5

    def __post_init__(self) -> None:
        for key in ("mean", "std"):
            value = getattr(self, key)
            if isinstance(value, (list, tuple)):
                if len(value) not in (1, self.channels):
                    raise ValueError(f"{key} has {len(value)} values for {self.channels} channels")
                object.__setattr__(self, key, tuple(float(v) for v in value))

    def _per_channel(self, value, x: torch.Tensor) -> torch.Tensor | float:
        if isinstance(value, tuple):
            return torch.tensor(value, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        return value

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
        return ((x - self._per_channel(self.mean, x)) / self._per_channel(self.std, x)).contiguous()


def create_model(name: str, **options) -> nn.Module:
    """Build a registered model; it carries ``input_spec`` and the CAM names (module docstring).

    ``prefix:arch`` names (``timm:resnet18``, ``torchvision:resnet50``) go to the factory
    registered as ``prefix:``, which receives ``arch`` as its first argument.
    """
    if ":" in name:
        prefix, arch = name.split(":", 1)
        return MODELS.create(prefix + ":", arch=arch, **options)
    return MODELS.create(name, **options)
