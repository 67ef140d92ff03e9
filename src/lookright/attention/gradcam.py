"""Grad-CAM: ``ReLU(sum_k alpha_k A_k)``, ``alpha_k = mean_ij d y_c / d A_k(i, j)``.

Gradients are taken with ``torch.autograd.grad`` with respect to the hooked activation only,
so the backward runs through the layers *after* it (the head), not the whole network: about
one forward pass in all. With ``differentiable=True`` the gradient graph is kept
(``create_graph``) so that a loss on the map trains the model through both ``A`` and ``alpha``.
``second_order=False`` treats ``alpha`` as a constant when training (the loss reaches the model
through ``A`` only): no double backward, a cheaper step.

Token layers (ViT blocks) give ``(B, T, D)``: activations and gradients are reshaped to the
patch grid ``(B, D, h, w)`` with the prefix tokens dropped (:mod:`lookright.attention.tokens`),
so ``alpha`` averages over patch tokens only. At a ViT's last block output the class score
does not depend on the patch tokens (the head reads the class token), so the map there is
zero; the backbones' default layer is the last block's input. Fused attention kernels have no
double backward, so a second-order map runs attention on PyTorch's math kernel.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from lookright.attention.base import EXTRACTORS, Extractor, capture, layer_of, resolve_targets
from lookright.attention.tokens import tokens_to_grid


@EXTRACTORS.register("gradcam")
class GradCAM(Extractor):
    name = "gradcam"

    def __init__(self, layer: str | None = None, relu: bool = True, second_order: bool = True) -> None:
        self.layer = layer
        self.relu = relu
        self.second_order = second_order

    def with_logits(self, model, x, target_class=None, differentiable=False):
        create_graph = differentiable and self.second_order
        kernel = sdpa_kernel(SDPBackend.MATH) if create_graph else contextlib.nullcontext()
        with torch.enable_grad(), capture(layer_of(model, self.layer), require_grad=True) as store:
            with kernel:
                logits = model(x)
            acts = store["output"]
            cls = resolve_targets(target_class, logits)
            score = logits.gather(1, cls[:, None]).sum()
            (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph, retain_graph=differentiable)
            acts, grads = tokens_to_grid(acts, model), tokens_to_grid(grads, model)
            maps = (acts * grads.mean(dim=(2, 3), keepdim=True)).sum(dim=1)
            if self.relu:
                maps = F.relu(maps)
        if not differentiable:
            return maps.detach(), logits.detach()
        return maps, logits
