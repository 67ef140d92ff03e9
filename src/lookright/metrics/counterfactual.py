"""Shortcut reliance measured without the shifted test set.

``acc``: accuracy on ``M * x + (1 - M) * context(x_partner)`` where the partner is another image
of the same (in-distribution) split, of any class: the region outside the relevant mask, and any
cue there, now comes from a random image and says nothing about the label, as under a shortcut
benchmark's test rule. ``consistency``: the share of images whose prediction does not change
under that swap. Both need only training-distribution images and
their masks; a model that ignores everything outside the mask scores its clean accuracy and
consistency 100%. The partner draw is seeded (``seed``), so the score is repeatable and the same
for every model scored with that seed.
"""

from __future__ import annotations

import torch

from lookright.data.counterfactual import counterfactual
from lookright.metrics.accuracy import accuracy, predict


@torch.no_grad()
def counterfactual_scores(model, x: torch.Tensor, y: torch.Tensor, input_mask: torch.Tensor, seed: int = 0,
                          batch_size: int = 2000, repeats: int = 1, clean: torch.Tensor | None = None) -> dict:
    """``{"acc": %, "consistency": %}`` averaged over ``repeats`` partner draws (caller sets eval mode).

    ``clean``: the model's predictions on ``x`` when the caller already has them.
    """
    if clean is None:
        clean = predict(model, x, batch_size)
    acc = cons = 0.0
    for r in range(repeats):
        gen = torch.Generator().manual_seed(seed * 7919 + r)
        x_cf = counterfactual(x, input_mask, "swap", gen)
        pred = predict(model, x_cf, batch_size)
        acc += accuracy(pred, y)
        cons += accuracy(pred, clean)
    return {"acc": acc / repeats, "consistency": cons / repeats}
