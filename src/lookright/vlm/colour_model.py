"""Carve a mask by a per-image colour model: drop its pixels whose colour belongs to the background.

A mask drawn from patch-level evidence can be a blob around a thin object (the stroke of a digit
and the black between its strokes). Per image, as in GrabCut's colour models (Rother et al.,
SIGGRAPH 2004), with histograms instead of Gaussian mixtures: colours are quantised to ``bins``
levels per channel, ``h_in`` is the normalised colour histogram of the mask's pixels and
``h_out`` that of the other pixels, and a mask pixel of colour ``c`` is kept when
``h_in(c) >= h_out(c)`` (the naive-Bayes decision with equal priors, so a small mask is not
outvoted by a large background). The histograms are then taken again from the carved mask, for
``iterations`` rounds: a colour removed once leaves ``h_in`` and stays removed, so the rounds only
sharpen the decision. Only pixels of the incoming mask can stay: the stage removes, never adds,
unless ``grow`` is on.

``grow``: then the carved mask is extended by the pixels of colours at least ``grow_ratio`` times
as typical of the carved mask as of the rest, ``h_in(c) >= grow_ratio h_out(c)``, that are
8-connected to it through such pixels, as hysteresis thresholding extends strong edges along weak
ones (Canny 1986): a mask that covers one arm of a uniformly coloured digit reaches the rest of
it. The margin keeps a mask that lies on the background from growing over it (black is about as
typical of the rest of the image as of such a mask). Growth follows colour alone, so an object
whose colour runs on into the background (a white stroke touching white bars) spills into it.

An image whose mask is empty or covers the whole image is left as it is (one of the histograms
is undefined), and so is one whose carved mask would be empty (every colour of the mask is more
typical of the background: the colour model has no object to keep).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class ColourModelSettings(BaseModel):
    """The colour-model stage of the VLM teacher (``target.vlm.colour_model``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    bins: int = Field(8, ge=2, le=64, description="quantisation levels per colour channel")
    iterations: int = Field(3, ge=1, description="rounds of histograms taken from the carved mask")
    grow: bool = Field(False, description="then add the pixels of the object's colours connected to the carved mask")
    grow_ratio: float = Field(2.0, ge=1.0, description="grow through colours with h_in(c) >= grow_ratio x h_out(c)")


def colour_bins(images: torch.Tensor, bins: int) -> torch.Tensor:
    """``(B, H*W)`` colour bin of each pixel of float images ``(B, C, H, W)`` in ``[0, 1]``:
    ``sum_c floor(bins x_c) bins^c``."""
    levels = (images.clamp(0, 1) * bins).long().clamp(max=bins - 1)
    weights = bins ** torch.arange(images.shape[1], device=images.device)
    return (levels * weights.view(1, -1, 1, 1)).sum(dim=1).flatten(1)


def colour_carve(images: torch.Tensor, masks: torch.Tensor, settings: ColourModelSettings) -> torch.Tensor:
    """``masks`` ``(B, H, W)`` in {0, 1} with the pixels whose colour is more typical of the
    image's background than of its mask removed (see the module docstring)."""
    start = masks.flatten(1).float()
    idx = colour_bins(images, settings.bins)
    n_bins = settings.bins ** images.shape[1]
    area = start.sum(dim=1, keepdim=True)
    defined = (area > 0) & (area < start.shape[1])
    every = torch.zeros(len(idx), n_bins, device=idx.device).scatter_add_(1, idx, torch.ones_like(start))
    current = start
    for _ in range(settings.iterations):
        h_in, h_out = _pixel_histograms(every, idx, current)
        carved = start * (h_in >= h_out).float()
        current = torch.where(defined & (carved.sum(dim=1, keepdim=True) > 0), carved, start)
    if settings.grow:
        h_in, h_out = _pixel_histograms(every, idx, current)
        allowed = (h_in >= settings.grow_ratio * h_out) & defined & (carved.sum(dim=1, keepdim=True) > 0)
        current = _grown(current.view_as(masks).float(), allowed.view_as(masks).float()).flatten(1)
    return current.view_as(masks).to(masks.dtype)


def _pixel_histograms(every: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h_in, h_out)`` at each pixel ``(B, H*W)``: the normalised histograms of the mask's pixels and
    of the others (``every``: the image's histogram ``(B, bins)``, ``idx``: each pixel's bin)."""
    inside = torch.zeros_like(every).scatter_add_(1, idx, mask)
    h_in = inside / inside.sum(dim=1, keepdim=True).clamp_min(1)
    h_out = (every - inside) / (every - inside).sum(dim=1, keepdim=True).clamp_min(1)
    return h_in.gather(1, idx), h_out.gather(1, idx)


def _grown(masks: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``masks`` ``(B, H, W)`` extended by the ``allowed`` pixels 8-connected to them through
    ``allowed`` pixels (repeated 3 x 3 dilation inside ``allowed`` until nothing changes)."""
    grown = masks
    while True:
        step = torch.maximum(grown, F.max_pool2d(grown[:, None], 3, stride=1, padding=1)[:, 0] * allowed)
        if torch.equal(step, grown):
            return grown
        grown = step
