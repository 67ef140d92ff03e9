"""From a dense map to a pseudo-mask: upsample, normalise, threshold, (refine), morphology.

``postprocess(maps, size, threshold, pipeline)``:

1. upsample ``(B, g, g)`` bilinearly (``align_corners=False``) to the image size;
2. min-max normalise each map to ``[0, 1]`` (a constant map becomes all zero);
3. threshold: a number ``t`` keeps ``map >= t``; ``"otsu"`` picks, per image, the threshold that
   maximises the between-class variance of a 256-bin histogram (Otsu 1979), batched on the
   device; ``None`` keeps the soft map;
4. optional affinity refinement (``refine_steps > 0``): ``m <- normalise(A^T m)`` with ``A`` the
   row-normalised patch affinity ``softmax(f f^T / tau)`` of the ViT's last-block tokens, applied
   on the patch grid before upsampling (a random-walk smoothing, as in affinity-based WSSS);
5. the core's morphology pipeline (:class:`lookright.targets.morphology.MaskPipeline`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.losses.base import minmax


def otsu_thresholds(maps: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Per-image Otsu threshold ``(B,)`` of maps in ``[0, 1]`` (``(B, H, W)``)."""
    flat = maps.flatten(1).clamp(0, 1)
    idx = (flat * (bins - 1)).round().long()
    hist = torch.zeros(flat.shape[0], bins, device=maps.device, dtype=torch.float64)
    hist.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    p = hist / hist.sum(dim=1, keepdim=True)
    levels = torch.arange(bins, device=maps.device, dtype=torch.float64) / (bins - 1)
    w0 = p.cumsum(dim=1)
    mu = (p * levels).cumsum(dim=1)
    mu_total = mu[:, -1:]
    between = (mu_total * w0 - mu) ** 2 / (w0 * (1 - w0)).clamp_min(1e-12)
    between[(w0 <= 0) | (w0 >= 1)] = -1
    k = between.argmax(dim=1)
    # class 0 is levels <= k: the threshold sits halfway to the next level
    return ((levels[k] + 0.5 / (bins - 1))).float()


def affinity_refine(maps: torch.Tensor, tokens: torch.Tensor, steps: int = 1, tau: float = 0.1) -> torch.Tensor:
    """``(B, g, g)`` maps, ``(B, g*g, C)`` patch tokens -> maps propagated ``steps`` times."""
    b, g, _ = maps.shape
    f = F.normalize(tokens, dim=-1)
    affinity = ((f @ f.transpose(1, 2)) / tau).softmax(dim=-1)
    m = maps.reshape(b, -1, 1)
    for _ in range(steps):
        m = affinity.transpose(1, 2) @ m
    return minmax(m.reshape(b, g, g))


def shift_averaged(maps_of, images: torch.Tensor, grid: int, shifts: int) -> torch.Tensor:
    """``(B, H, W)``: the mean over ``shifts x shifts`` offsets ``(dy, dx) = round((i, j) H / (g k))``,
    ``i, j < k``, of ``maps_of(image moved by (dy, dx))`` (a ``(B, g, g)`` map, min-max normalised, each
    cell spread over its pixels) moved back; borders are filled by replicating the edge. Each pixel then averages ``k^2``
    cells whose windows are offset by ``1/k`` of a patch: a sliding window at ``1/k`` of the patch
    grid's pitch, so a patch-level map resolves detail finer than a patch."""
    h, w = images.shape[-2:]
    total = images.new_zeros(images.shape[0], h, w)
    for i in range(shifts):
        for j in range(shifts):
            dy, dx = round(i * h / (grid * shifts)), round(j * w / (grid * shifts))
            moved = F.pad(images, (dx, 0, dy, 0), mode="replicate")[..., :h, :w]
            cells = F.interpolate(minmax(maps_of(moved).float())[:, None], size=(h, w), mode="nearest")
            total += F.pad(cells, (0, dx, 0, dy), mode="replicate")[:, 0, dy:, dx:]
    return total / shifts ** 2


def soft_and_thresholds(maps: torch.Tensor, size: tuple[int, int], threshold: float | str | None = "otsu"
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Steps 1-3 without binarising: ``(soft (B, H, W) in [0, 1], thresholds (B,) or None)``;
    a constant map's threshold is above 1, so its mask is empty."""
    if maps.dim() != 3:
        raise ConfigError(f"maps must be (B, h, w), got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ConfigError("the dense map holds NaN or Inf; check the CLIP weights and the prompts")
    up = minmax(F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0])
    if threshold == "otsu":
        t = otsu_thresholds(up)
    elif threshold is None:
        return up, None
    elif isinstance(threshold, (int, float)) and 0 <= threshold <= 1:
        t = torch.full((up.shape[0],), float(threshold), device=up.device)
    else:
        raise ConfigError(f"threshold must be a number in [0, 1], 'otsu' or null, got {threshold!r}")
    constant = up.flatten(1).amax(dim=1) <= 0
    return up, torch.where(constant, torch.full_like(t, 2.0), t)


def postprocess(maps: torch.Tensor, size: tuple[int, int], threshold: float | str | None = "otsu",
                pipeline=None) -> torch.Tensor:
    up, t = soft_and_thresholds(maps, size, threshold)
    masks = up if t is None else (up >= t[:, None, None]).float()
    masks = masks * (up.flatten(1).amax(dim=1) > 0).float()[:, None, None]  # a constant map gives an empty mask
    if pipeline is not None:
        masks = pipeline(masks, tuple(size))
    return masks
