"""Mask-guided counterfactuals: keep the relevant region, replace everything else.

``x' = M * x + (1 - M) * fill`` with ``M`` the relevant mask at the image's resolution and
``fill`` either another image ``p`` of the batch (``swap``: ``fill = (1 - M_p) * x_p + M_p * bg_p``,
the partner's own context with its object replaced by ``bg_p``, the per-channel mean of the
partner outside its mask, so no piece of the partner's object leaks in) or per-pixel uniform
noise over the range of the batch (``noise``).

Partners are a random derangement of the batch, *whatever their class*: the context, and any cue
in it, then carries no information about the label (it matches it for about 1 / K of images,
as under a shortcut benchmark's test rule). Always choosing a partner of another class would
make the context *anti*-correlated with the label, a shortcut of its own that a model learns
when the object is hard to read (seen on ``texture-mnist-64``: 0.8% in-distribution accuracy).

A model that reads only the masked region gives the same prediction on ``x`` and ``x'``; a model
that reads a cue outside it follows the partner's cue.
Works on batched tensors on any device; the partner draw uses the given generator (seeded, so a
selection score is repeatable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError, MaskError

FILLS = ("swap", "noise")


def input_masks(masks: torch.Tensor, size: tuple[int, int], dilate: int = 0) -> torch.Tensor:
    """Binary ``(N, H, W)`` masks -> ``(N, 1, h, w)`` float masks at the model input's size.

    ``dilate`` pixels of margin (max pooling at mask resolution) keep the object's edge; resizing
    is nearest-neighbour, so the result stays binary.
    """
    if masks.dim() != 3:
        raise MaskError(f"masks must be (N, H, W), got {tuple(masks.shape)}")
    m = masks.float()[:, None]
    if dilate:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=tuple(size), mode="nearest")
    return m


def partners(n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """A random derangement of ``range(n)``: every image gets another image, of any class.

    A uniform random cyclic shift of a random permutation: ``p[perm[i]] = perm[(i + s) % n]``
    with ``s`` in ``1..n-1``, so no image is its own partner (for ``n >= 2``).
    """
    if n < 2:
        return torch.zeros(n, dtype=torch.long, device=device)
    perm = torch.randperm(n, generator=generator)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    idx = torch.empty(n, dtype=torch.long)
    idx[perm] = perm.roll(-shift)
    return idx.to(device)


def counterfactual(x: torch.Tensor, mask: torch.Tensor, fill: str = "swap",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``M * x + (1 - M) * fill`` for model inputs ``x (N, C, h, w)`` and masks ``(N, 1, h, w)``."""
    if fill not in FILLS:
        raise ConfigError(f"unknown counterfactual fill {fill!r}; choose {', '.join(FILLS)}")
    if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise MaskError(f"counterfactual: masks {tuple(mask.shape)} do not fit inputs {tuple(x.shape)}; "
                        "resize them with input_masks(masks, x.shape[-2:])")
    if fill == "swap":
        p = partners(len(x), generator, x.device)
        return swap_fill(x, mask, x[p], mask[p])
    lo, hi = x.amin(), x.amax()
    u = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
    other = lo + (hi - lo) * u
    return mask * x + (1.0 - mask) * other


def swap_fill(x: torch.Tensor, mask: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor) -> torch.Tensor:
    """``M * x + (1 - M) * ((1 - M_p) * x_p + M_p * bg_p)`` image by image, for partners ``x_p``
    (``other``) with masks ``M_p``; ``bg_p`` is each partner's per-channel mean outside its mask."""
    outside = 1.0 - other_mask
    bg = (other * outside).sum(dim=(2, 3), keepdim=True) / outside.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    return mask * x + (1.0 - mask) * (outside * other + other_mask * bg)
