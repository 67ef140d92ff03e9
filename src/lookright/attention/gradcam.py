"""Grad-CAM: ``ReLU(sum_k alpha_k A_k)``, ``alpha_k = mean_ij d y_c / d A_k(i, j)``.

Gradients are taken with ``torch.autograd.grad`` with respect to the hooked activation only,
so the backward runs through the layers *after* it (the head), not the whole network: about
one forward pass in all. With ``differentiable=True`` the gradient graph is kept
(``create_graph``) so that a loss on the map trains the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.attention.base import EXTRACTORS, Extractor, capture, layer_of, resolve_targets


@EXTRACTORS.register("gradcam")
class GradCAM(Extractor):
    name = "gradcam"

    def __init__(self, layer: str | None = None, relu: bool = True) -> None:
        self.layer = layer
        self.relu = relu

    def with_logits(self, model, x, target_class=None, differentiable=False):
        with torch.enable_grad(), capture(layer_of(model, self.layer), require_grad=True) as store:
            logits = model(x)
            acts = store["output"]
            cls = resolve_targets(target_class, logits)
            score = logits.gather(1, cls[:, None]).sum()
            (grads,) = torch.autograd.grad(score, acts, create_graph=differentiable, retain_graph=differentiable)
            maps = torch.einsum("bkhw,bk->bhw", acts, grads.mean(dim=(2, 3)))
            if self.relu:
                maps = F.relu(maps)
        if not differentiable:
            return maps.detach(), logits.detach()
        return maps, logits
