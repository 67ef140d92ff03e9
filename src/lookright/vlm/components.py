"""Keep the parts of a mask that the CLIP pointed at: connected components filtered by their seed.

The decoder and the CRF work on pixels: they can add a bright region that looks like the object
to them but that the CLIP's seed map never lit (a bright decoy patch in a corner). With
``components: seeded`` the final mask is split into 8-connected components and a component is kept
when the mean of the seed's soft map ``m`` over it is at least the seed's threshold ``t`` (the
CLIP, on average, calls it foreground), and the component with the largest seed mass
``sum m`` is always kept, so a non-empty mask stays non-empty. ``components: largest`` keeps that
component only: one object per image (a digit drawn in two strokes that do not touch loses the
smaller one).

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


def keep_seeded_components(masks: torch.Tensor, seed: torch.Tensor, threshold: torch.Tensor,
                           largest_only: bool = False) -> torch.Tensor:
    """``masks (B, H, W)`` binary, ``seed (B, H, W)`` the seed's soft map, ``threshold (B,)`` its
    threshold -> the masks without the components whose mean seed is below the threshold (the
    component of largest seed mass always stays; with ``largest_only`` it is the only one)."""
    b, h, w = masks.shape
    ids = connected_components(masks).flatten(1)  # (B, HW), 0 = background
    slots = h * w + 1
    flat = ids + torch.arange(b, device=ids.device)[:, None] * slots
    mass = torch.zeros(b * slots, device=seed.device).scatter_add_(0, flat.flatten(), seed.flatten().float())
    area = torch.zeros(b * slots, device=seed.device).scatter_add_(0, flat.flatten(), torch.ones_like(seed).flatten())
    mass, area = mass.view(b, slots), area.view(b, slots)
    mass[:, 0] = -1  # never the background
    mean = mass / area.clamp_min(1)
    largest = torch.arange(slots, device=ids.device)[None] == mass.argmax(dim=1, keepdim=True)
    keep = largest if largest_only else (mean >= threshold.view(-1, 1)) | largest
    keep[:, 0] = False
    return torch.gather(keep, 1, ids).view(b, h, w).to(masks.dtype)
