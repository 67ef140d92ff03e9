"""Expected Gradients (Erion et al., "Learning explainable models using attribution priors").

For a score ``g`` (``target="class"``: ``log p_t(x)``; ``target="all"``: ``sum_c log p_c(x)``),
a reference ``x'`` drawn from other training images and ``alpha ~ U(0, 1)``:

    EG(x) = E_{x', alpha} [ (x - x') * dg/dx (x' + alpha (x - x')) ]

estimated with ``samples`` draws per image. References come from the batch itself: each draw
is a random permutation of the batch with no fixed point, so every image's reference is another
image (a batch of one has no other image and falls back to the all-zero reference). In
expectation ``sum EG(x) = g(x) - E_{x'} g(x')`` (completeness). The returned map is
``|sum_channels EG|`` at input resolution ``(B, H, W)``.

Draws use torch's global RNG (reproducible after ``torch.manual_seed``), or a private generator
seeded once with ``seed``. The ``samples * B`` interpolated images go through the model in one
batch; ``logits`` come from a separate forward pass on the clean ``x``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.attention.base import EXTRACTORS, Extractor, resolve_targets


@EXTRACTORS.register("expected-gradients")
class ExpectedGradients(Extractor):
    name = "expected-gradients"

    def __init__(self, samples: int = 1, target: str = "class", seed: int | None = None) -> None:
        if target not in ("all", "class"):
            raise ValueError("target must be 'all' or 'class'")
        if int(samples) < 1:
            raise ValueError("samples must be at least 1")
        self.samples = int(samples)
        self.target = target
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def _draw(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference indices ``(samples, B)`` (no image its own reference) and alphas ``(samples, B)``."""
        g = self.generator
        refs = torch.empty(self.samples, batch, dtype=torch.long)
        for s in range(self.samples):
            order = torch.randperm(batch, generator=g)
            refs[s, order] = order.roll(-1)  # one cycle through the batch: a permutation with no fixed point
        alpha = torch.rand(self.samples, batch, generator=g)
        return refs, alpha

    def attributions(self, model, x, target_class=None, differentiable=False):
        """Signed attributions ``(B, C, H, W)`` and the clean logits ``(B, K)``."""
        batch = x.shape[0]
        x = x.detach()
        with torch.set_grad_enabled(differentiable):
            logits = model(x)
        targets = resolve_targets(target_class, logits)
        refs, alpha = self._draw(batch)
        refs, alpha = refs.to(x.device), alpha.to(device=x.device, dtype=x.dtype)
        if batch > 1:
            reference = x[refs.reshape(-1)]
        else:
            reference = torch.zeros_like(x).repeat(self.samples, 1, 1, 1)
        xs = x.repeat(self.samples, *([1] * (x.dim() - 1)))
        a = alpha.reshape(-1, *([1] * (x.dim() - 1)))
        with torch.enable_grad():
            points = (reference + a * (xs - reference)).requires_grad_(True)
            logp = F.log_softmax(model(points), dim=1)
            if self.target == "all":
                score = logp.sum()
            else:
                score = logp.gather(1, targets.repeat(self.samples)[:, None]).sum()
            (grads,) = torch.autograd.grad(score, points, create_graph=differentiable, retain_graph=differentiable)
        attr = ((xs - reference) * grads).reshape(self.samples, *x.shape).mean(dim=0)
        return attr, logits

    def with_logits(self, model, x, target_class=None, differentiable=False):
        attr, logits = self.attributions(model, x, target_class, differentiable)
        maps = attr.sum(dim=1).abs()
        if not differentiable:
            return maps.detach(), logits.detach()
        return maps, logits
