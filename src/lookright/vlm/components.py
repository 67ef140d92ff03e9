"""Keep the parts of a mask that the CLIP pointed at: connected components filtered by their seed.

The decoder and the CRF work on pixels: they can add a bright region that looks like the object
to them but that the CLIP's seed map never lit (a bright decoy patch in a corner). With
``components: seeded`` the final mask is split into 8-connected components and a component is kept
when the mean of the seed's soft map ``m`` over it is at least the seed's threshold ``t`` (the
CLIP, on average, calls it foreground), and the component with the largest seed mass
``sum m`` is always kept, so a non-empty mask stays non-empty. ``components: largest`` keeps that
component only: one object per image (a digit drawn in two strokes that do not touch loses the
smaller one).

``boundary_sigma`` (off by default) ranks components by ``sum m * exp(-b^2 / (2 sigma^2))``
instead of ``sum m``, with the boundary connectivity ``b = (pixels on the image border) /
sqrt(area)`` of Zhu et al. (CVPR 2014, "Saliency optimization from robust background
detection"; they use sigma = 1): a component that runs along the border (a frame, a
corner patch) is background far more often than an object; one that does not touch it keeps
its mass. ``only_on_the_border`` flags masks whose every component has a boundary weight below
1/2 (the decoder's ``drop_border`` leaves such images out of its labels).

Components are labelled by propagating the largest pixel index through 3 x 3 max pooling inside
the mask until nothing changes (batched, any device, no compiled extension).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def connected_components(masks: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` binary masks -> ``(B, H, W)`` long labels: 0 off the mask, else ``1 +`` the
    largest flat pixel index of the pixel's 8-connected component."""
    b, h, w = masks.shape
    on = masks > 0
    labels = torch.where(on, torch.arange(1, h * w + 1, device=masks.device).view(1, h, w).expand(b, h, w),
                         torch.zeros((), dtype=torch.long, device=masks.device)).float()
    while True:
        grown = torch.where(on, F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0], labels)
        if torch.equal(grown, labels):
            return labels.long()
        labels = grown


def _per_component(flat: torch.Tensor, values: torch.Tensor, slots: int) -> torch.Tensor:
    """Sums of ``values (B, H, W)`` per component slot ``(B, slots)``; ``flat`` holds each pixel's batch-offset
    component id (slot 0 of each image: off the mask)."""
    return torch.zeros(flat.numel() // flat.shape[1] * slots, device=values.device).scatter_add_(
        0, flat.flatten(), values.flatten().float()).view(-1, slots)


def _components(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids (B, HW), flat (B, HW), area (B, H*W + 1))``: component ids, the same offset per image, pixels per slot."""
    b, h, w = masks.shape
    ids = connected_components(masks).flatten(1)  # (B, HW), 0 = background
    flat = ids + torch.arange(b, device=ids.device)[:, None] * (h * w + 1)
    return ids, flat, _per_component(flat, torch.ones_like(masks), h * w + 1)


def _boundary_weights(flat: torch.Tensor, area: torch.Tensor, shape: tuple[int, int, int],
                      sigma: float) -> torch.Tensor:
    """``exp(-b^2 / (2 sigma^2))`` per component slot ``(B, H*W + 1)``; ``flat`` holds the batch-offset
    component ids of every pixel, ``area`` the pixel count per slot."""
    b, h, w = shape
    edge = torch.zeros(h, w, device=area.device)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = 1, 1, 1, 1
    on_border = _per_component(flat, edge.expand(b, h, w), h * w + 1)
    return torch.exp(-(on_border / area.clamp_min(1).sqrt()) ** 2 / (2 * sigma ** 2))


def only_on_the_border(masks: torch.Tensor, boundary_sigma: float) -> torch.Tensor:
    """``(B,)`` bool: the mask is non-empty and every 8-connected component of it has a boundary weight
    ``exp(-b^2 / (2 sigma^2))`` below 1/2 (``b > 1.18 sigma``): what it holds runs along the image border
    (the background around the object, a frame), nothing off it."""
    _, flat, area = _components(masks)
    weight = _boundary_weights(flat, area, tuple(masks.shape), boundary_sigma)
    present = area > 0
    present[:, 0] = False
    return present.any(dim=1) & ~((weight >= 0.5) & present).any(dim=1)


def keep_seeded_components(masks: torch.Tensor, seed: torch.Tensor, threshold: torch.Tensor,
                           largest_only: bool = False, boundary_sigma: float | None = None) -> torch.Tensor:
    """``masks (B, H, W)`` binary, ``seed (B, H, W)`` the seed's soft map, ``threshold (B,)`` its
    threshold -> the masks without the components whose mean seed is below the threshold (the
    component of largest seed mass, weighted by the boundary prior when ``boundary_sigma`` is set,
    always stays; with ``largest_only`` it is the only one)."""
    b, h, w = masks.shape
    slots = h * w + 1
    ids, flat, area = _components(masks)
    mass = _per_component(flat, seed, slots)
    mean = mass / area.clamp_min(1)
    score = mass.clone()
    if boundary_sigma is not None:
        score = score * _boundary_weights(flat, area, (b, h, w), boundary_sigma)
    score[:, 0] = -1  # never the background
    largest = torch.arange(slots, device=ids.device)[None] == score.argmax(dim=1, keepdim=True)
    keep = largest if largest_only else (mean >= threshold.view(-1, 1)) | largest
    keep[:, 0] = False
    return torch.gather(keep, 1, ids).view(b, h, w).to(masks.dtype)
