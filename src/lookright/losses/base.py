"""The alignment-loss interface.

A loss is called as ``loss(attention, target) -> scalar``. ``attention`` is ``(B, h, w)`` from an
extractor, ``target`` a ``(B, h, w)`` mask in ``[0, 1]`` on the same grid. Images whose mask is
empty (all zero) are skipped: they contribute nothing, and a batch where every mask is empty
gives a zero loss that still has a graph (never NaN). ``loss.evaluate(attention, target)``
returns ``Alignment(loss, valid)``, ``valid`` being the number of images that counted; losses
hold no state between calls.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lookright.attention.base import check_finite
from lookright.errors import MaskError
from lookright.registry import Registry


class Alignment(NamedTuple):
    """A batch's alignment loss and the number of images it averages over (non-empty masks)."""

    loss: torch.Tensor
    valid: int


class AlignmentLoss:
    name = "alignment"
    #: the extractor this loss is meant for, used when a config names none
    default_extractor = "cam"
    #: True for penalties that need the model and its input rather than a map (CDEP): they
    #: implement ``model_loss(model, x, y, target) -> (logits, Alignment)`` instead of ``per_image``
    needs_model = False

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of each image, ``(B,)``; entries of empty masks are ignored by ``__call__``."""
        raise NotImplementedError

    def evaluate(self, attention: torch.Tensor, target: torch.Tensor) -> Alignment:
        check_inputs(attention, target, self.name)
        valid = target.flatten(1).sum(dim=1) > 0
        n_valid = int(valid.sum())
        losses = self.per_image(attention, target)
        if n_valid == len(valid):
            return Alignment(losses.mean(), n_valid)
        if n_valid == 0:
            return Alignment(attention.sum() * 0.0, 0)
        return Alignment(losses[valid].mean(), n_valid)

    def member_losses(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:meth:`evaluate`'s loss for each of S stacked batches at once: ``(S, B, h, w)`` maps and
        targets -> ``(S,)``, each the mean over that batch's non-empty masks (0 where all are empty)."""
        check_inputs(attention[0], target[0], self.name)
        s, b = attention.shape[:2]
        losses = self.per_image(attention.flatten(0, 1), target.flatten(0, 1)).view(s, b)
        valid = target.flatten(2).sum(dim=2) > 0
        return torch.where(valid, losses, 0.0).sum(dim=1) / valid.sum(dim=1).clamp_min(1)

    def __call__(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.evaluate(attention, target).loss


LOSSES: Registry[AlignmentLoss] = Registry("alignment loss")


def create_loss(name: str, **options) -> AlignmentLoss:
    return LOSSES.create(name, **options)


def check_inputs(attention: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if attention.dim() != 3 or attention.shape != target.shape:
        raise MaskError(
            f"{what}: attention {tuple(attention.shape)} and target {tuple(target.shape)} must both be "
            "(B, h, w) of the same shape; resize the mask to the attention grid (pipeline op 'resize')"
        )
    check_finite(attention, what)


def minmax(a: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image min-max normalisation of ``(B, h, w)`` maps to ``[0, 1]``."""
    flat = a.flatten(1)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    return ((flat - lo) / (hi - lo + eps)).view_as(a)
