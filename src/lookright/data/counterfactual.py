"""Mask-guided counterfactuals: keep the relevant region, replace everything else.

``x' = M * x + (1 - M) * fill`` with ``M`` the relevant mask at the image's resolution and
``fill`` either another image ``p`` of a *different* class (``swap``: ``fill = (1 - M_p) * x_p +
M_p * bg_p``, the partner's own context with its object replaced by ``bg_p``, the per-channel
mean of the partner outside its mask, so every cue outside the mask comes from an image of
another label and no piece of the partner's object leaks in) or per-pixel uniform noise over
the range of the batch (``noise``). A model that reads only the masked region gives the same
prediction on ``x`` and ``x'``; a model that reads a cue outside it follows the partner's cue.
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


def partners(y: torch.Tensor, generator: torch.Generator | None = None, tries: int = 8) -> torch.Tensor:
    """For each image an index of another image, of a different class wherever the batch allows."""
    n = len(y)
    idx = torch.randperm(n, generator=generator).to(y.device)
    for _ in range(tries):
        same = y[idx] == y
        if not same.any():
            break
        redraw = torch.randint(0, n, (int(same.sum()),), generator=generator).to(y.device)
        idx = idx.clone()
        idx[same] = redraw
    return idx


def counterfactual(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, fill: str = "swap",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``M * x + (1 - M) * fill`` for model inputs ``x (N, C, h, w)`` and masks ``(N, 1, h, w)``."""
    if fill not in FILLS:
        raise ConfigError(f"unknown counterfactual fill {fill!r}; choose {', '.join(FILLS)}")
    if mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise MaskError(f"counterfactual: masks {tuple(mask.shape)} do not fit inputs {tuple(x.shape)}; "
                        "resize them with input_masks(masks, x.shape[-2:])")
    if fill == "swap":
        p = partners(y, generator)
        other, m_p = x[p], mask[p]
        outside = (1.0 - m_p)
        bg = (other * outside).sum(dim=(2, 3), keepdim=True) / outside.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        other = outside * other + m_p * bg
    else:
        lo, hi = x.amin(), x.amax()
        u = torch.rand(x.shape, generator=generator).to(x.device, x.dtype)
        other = lo + (hi - lo) * u
    return mask * x + (1.0 - mask) * other
