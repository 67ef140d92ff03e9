"""Input gradients, as used by Right for the Right Reasons (RRR).

``G = d/dx sum_c log p_c(x)`` (``target="all"``, RRR's choice) or ``d/dx log p_t(x)`` for a
single class; the returned map is ``sum_channels G^2`` at input resolution ``(B, H, W)``.
A loss on it needs ``create_graph``: training with it costs about twice a plain step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.attention.base import EXTRACTORS, Extractor, resolve_targets


@EXTRACTORS.register("input-gradients")
class InputGradients(Extractor):
    name = "input-gradients"

    def __init__(self, target: str = "all") -> None:
        if target not in ("all", "class"):
            raise ValueError("target must be 'all' or 'class'")
        self.target = target

    def with_logits(self, model, x, target_class=None, differentiable=False):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = model(x)
            logp = F.log_softmax(logits, dim=1)
            if self.target == "all":
                score = logp.sum()
            else:
                score = logp.gather(1, resolve_targets(target_class, logits)[:, None]).sum()
            (grads,) = torch.autograd.grad(score, x, create_graph=differentiable, retain_graph=differentiable)
            maps = grads.pow(2).sum(dim=1)
        if not differentiable:
            return maps.detach(), logits.detach()
        return maps, logits
