"""Attention mass inside a mask (energy-based pointing game).

``energy(A, M) = sum(A+ * M) / sum(A+)`` with ``A+ = ReLU(A)`` upsampled bilinearly to the
mask's size (the attention grid is taken to span the whole image). Undefined when the mask is
empty or ``A+`` is all zero: such images are excluded from the mean and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from lookright.attention.base import check_finite
from lookright.errors import MaskError


def upsample(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(attention.shape[-2:]) == tuple(size):
        return attention
    return F.interpolate(attention[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def energy_inside(attention: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image energy ``(B,)`` and a ``(B,)`` bool tensor of the images where it is defined."""
    if attention.dim() != 3 or mask.dim() != 3 or attention.shape[0] != mask.shape[0]:
        raise MaskError(f"attention {tuple(attention.shape)} and mask {tuple(mask.shape)} must be (B, h, w) and (B, H, W)")
    check_finite(attention, "energy_inside")
    a = F.relu(upsample(attention.float(), tuple(mask.shape[-2:]))).flatten(1)
    m = mask.flatten(1).float()
    total = a.sum(dim=1)
    defined = (total > 0) & (m.sum(dim=1) > 0)
    energy = (a * m).sum(dim=1) / total.clamp_min(1e-12)
    return energy, defined


@dataclass
class EnergyAccumulator:
    """Running mean of the energy over the images where it is defined."""

    total: float = 0.0
    count: int = 0
    undefined: int = 0

    def update(self, attention: torch.Tensor, mask: torch.Tensor) -> None:
        energy, defined = energy_inside(attention, mask)
        self.total += energy[defined].sum().item()
        self.count += int(defined.sum())
        self.undefined += int((~defined).sum())

    def compute(self) -> dict:
        mean = self.total / self.count if self.count else None
        return {"mean": mean, "images": self.count, "undefined": self.undefined,
                "convention": "sum(relu(A)*M)/sum(relu(A)), A upsampled bilinearly to mask size"}

    def state(self) -> dict:
        return asdict(self)
