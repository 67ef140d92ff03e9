"""Side-by-side composites for the ``region`` pretraining objective.

Two captioned images become one: each is shrunk to a square of ``w = floor(g / 2) * patch`` pixels
(``g`` the patch grid's side) and pasted into its side of a black canvas, the left one into the
pixel columns ``[0, w)``, the right one into ``[S - w, S)``, each at a random height; a middle
column of patches stays black when ``g`` is odd. The composite's caption is implied, "<left
caption> on the left, <right caption> on the right": each side is a *region*, the patch columns
``[0, g // 2)`` or ``[g - g // 2, g)`` over all rows, named by the caption of the image pasted
there. A side is left empty (black, named by the background captions) with probability
``p_empty``. No mask is used: a region is a half of the canvas, known from where the caption
says the object is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def side_by_side(left: torch.Tensor, right: torch.Tensor, patch_size: int, p_empty: float = 0.25,
                 fill: torch.Tensor | float = -1.0, generator: torch.Generator | None = None):
    """``left``, ``right``: ``(B, C, S, S)`` normalised images; ``fill`` is their black (a number, or
    one value per channel).

    Returns ``(composites (B, C, S, S), regions (2, P) bool, blank (B, 2) bool)``: ``regions[k]``
    marks the patches (row-major over the ``g x g`` grid) of side ``k`` (0 left, 1 right);
    ``blank[i, k]`` is True where side ``k`` of composite ``i`` was left empty."""
    b, c, s, _ = left.shape
    g = s // patch_size
    half = g // 2
    if half < 1:
        raise ValueError(f"a {g} x {g} patch grid has no room for two sides; region composites need g >= 2")
    w = half * patch_size
    shrink = lambda x: F.interpolate(x, size=(w, w), mode="area")  # noqa: E731
    canvas = torch.as_tensor(fill, dtype=left.dtype).reshape(1, -1, 1, 1).expand(b, c, s, s).clone()
    blank = torch.rand(b, 2, generator=generator) < p_empty
    rows = torch.randint(0, s - w + 1, (b, 2), generator=generator)
    for side, (images, col) in enumerate(((left, 0), (right, s - w))):
        small = shrink(images)  # (B, C, w, w)
        offset = torch.arange(s)[None] - rows[:, side, None]  # canvas row -> row of the small image, (B, S)
        inside = ((offset >= 0) & (offset < w) & ~blank[:, side, None]).to(left.device)
        index = offset.clamp(0, w - 1).to(left.device)[:, None, :, None].expand(b, c, s, w)
        band = torch.gather(small, 2, index)  # (B, C, S, w): the small image moved down by its row offset
        canvas[..., col:col + w] = torch.where(inside[:, None, :, None], band, canvas[..., col:col + w])
    cols = torch.arange(g).repeat(g)
    regions = torch.stack([cols < half, cols >= g - half])
    return canvas, regions, blank
