"""CAMAL-family losses: reward attention inside the mask, suppress it outside.

* ``camal`` (energy form, the default): ``loss = 1 - sum(A+ * M) / (sum(A+) + eps)`` with
  ``A+ = ReLU(attention)``: one minus the energy-based pointing game, i.e. the share of
  positive attention that falls outside the mask. ``eps = 1e-6``; an all-zero ``A+`` gives 1.
* ``camal-bce``: ``BCE(sigmoid(attention), M)`` averaged over positions: pushes the raw map
  positive inside the mask and negative outside, independently per position.

Empty masks are skipped and counted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.losses.base import LOSSES, AlignmentLoss


@LOSSES.register("camal")
class CAMALEnergy(AlignmentLoss):
    name = "camal"

    def __init__(self, eps: float = 1e-6) -> None:

        self.eps = eps

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a = F.relu(attention).flatten(1)
        inside = (a * target.flatten(1)).sum(dim=1)
        return 1.0 - inside / (a.sum(dim=1) + self.eps)


@LOSSES.register("camal-bce")
class CAMALBCE(AlignmentLoss):
    name = "camal-bce"

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(attention, target.float(), reduction="none")
        return bce.flatten(1).mean(dim=1)
