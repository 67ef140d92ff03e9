"""Right for the Right Reasons (RRR) penalty on input gradients.

With ``G = d/dx sum_c log p_c`` (extractor ``input-gradients``, which returns
``S = sum_channels G^2`` at input resolution) and ``M`` the relevant region:
``loss_i = sum_pixels (1 - M) * S``, i.e. the squared input gradient outside the mask,
batch mean. RRR's own formulation penalises inside an "irrelevant" annotation ``A``;
here ``A = 1 - M``. Scale it with ``loss.lambda0`` (RRR balances it against cross-entropy).
Empty masks are skipped and counted (an empty relevant region would penalise every pixel).
"""

from __future__ import annotations

import torch

from lookright.losses.base import LOSSES, AlignmentLoss


@LOSSES.register("rrr")
class RRRPenalty(AlignmentLoss):
    name = "rrr"
    default_extractor = "input-gradients"

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((1.0 - target) * attention).flatten(1).sum(dim=1)
