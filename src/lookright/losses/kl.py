"""Learning to Look's KL alignment loss.

``p = softmax_positions(minmax(ReLU(CAM)) / T)``, ``q = M / sum(M)``,
``loss = KL(q || p) = sum_i q_i (log q_i - log p_i)`` (with ``0 log 0 = 0``), batch mean over
images with a non-empty mask. The direction is target-to-attention: attention is pulled to
cover the mask. Empty masks are skipped and counted. ``T = 1`` (the paper's form) caps the
ratio of the most to the least attended position at ``e``; a smaller temperature ``T``
lifts that cap to ``e^(1/T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.losses.base import LOSSES, AlignmentLoss, minmax


@LOSSES.register("kl")
class KLAlignment(AlignmentLoss):
    name = "kl"

    def __init__(self, temperature: float = 1.0) -> None:

        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(minmax(F.relu(attention)).flatten(1) / self.temperature, dim=1)
        q = target.flatten(1).float()
        q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-12)
        q_log_q = q * q.clamp_min(1e-30).log()  # 0 log 0 = 0; constant in the model's parameters
        return (q_log_q - q * logp).sum(dim=1)
