"""Attention localisation against a binary mask, batched.

Conventions shared by every metric here:

* ``attention`` is ``(B, h, w)``, ``mask`` is ``(B, H, W)``; the attention grid is taken to
  span the whole image and is upsampled bilinearly (``align_corners=False``) to ``(H, W)``.
  ``mask > 0`` is the region. NaN or Inf attention is an error.
* Each metric returns ``(values, defined)``: per-image values ``(B,)`` and a bool ``(B,)`` that is
  False where the metric is undefined (empty mask, all-zero or constant attention, ...). Undefined
  images are excluded from means and counted (:class:`MetricAccumulator`), never NaN.
* Ranking pixels by attention breaks ties by row-major position (the earlier pixel ranks higher).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from lookright.attention.base import check_finite
from lookright.errors import MaskError

Metric = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def upsample(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(attention.shape[-2:]) == tuple(size):
        return attention
    return F.interpolate(attention[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def check_pair(attention: torch.Tensor, mask: torch.Tensor, what: str) -> None:
    """Shapes must be ``(B, h, w)`` and ``(B, H, W)`` with the same B; attention must be finite."""
    if attention.dim() != 3 or mask.dim() != 3 or attention.shape[0] != mask.shape[0]:
        raise MaskError(
            f"{what}: attention {tuple(attention.shape)} and mask {tuple(mask.shape)} must be (B, h, w) and "
            "(B, H, W) with the same batch size B; squeeze channel dimensions and pass one map per image")
    check_finite(attention, what)


def flat_pair(attention: torch.Tensor, mask: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Upsampled attention ``(B, N)`` float and the mask ``(B, N)`` bool."""
    check_pair(attention, mask, what)
    a = upsample(attention.float(), tuple(mask.shape[-2:])).flatten(1)
    return a, mask.flatten(1) > 0


def descending_order(a: torch.Tensor) -> torch.Tensor:
    """Pixel indices ``(B, N)`` from highest to lowest value, ties by row-major position."""
    return torch.sort(a, dim=1, descending=True, stable=True).indices


def ranks_of(a: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel ``(B, N)``: 0 for the most attended (ties by row-major position)."""
    order = descending_order(a)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(a.shape[1], device=a.device).expand_as(order))
    return ranks


def energy_pointing_game(attention: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum(relu(A) * M) / sum(relu(A))`` (Score-CAM's energy-based pointing game).

    Undefined for an empty mask or when ``relu(A)`` is all zero.
    """
    a, m = flat_pair(attention, mask, "energy_pointing_game")
    a = F.relu(a)
    total = a.sum(dim=1)
    defined = (total > 0) & m.any(dim=1)
    return (a * m).sum(dim=1) / total.clamp_min(1e-30), defined



def relevance_mass_accuracy(attention: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum(A * M) / sum(A)`` on the signed map (Arras et al. 2022; Quantus's convention).

    Equals the energy pointing game for non-negative maps. Undefined for an empty mask or
    ``sum(A) == 0``.
    """
    a, m = flat_pair(attention, mask, "relevance_mass_accuracy")
    total = a.sum(dim=1)
    defined = (total != 0) & m.any(dim=1)
    safe = torch.where(total == 0, torch.ones_like(total), total)
    return (a * m).sum(dim=1) / safe, defined


def relevance_rank_accuracy(attention: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction of the K most attended pixels inside the mask, ``K = |M|`` (Arras et al. 2022).

    Undefined for an empty mask.
    """
    a, m = flat_pair(attention, mask, "relevance_rank_accuracy")
    k = m.sum(dim=1)
    inside_rank = torch.where(m, ranks_of(a), torch.full_like(m, -1, dtype=torch.long))
    hits = ((inside_rank >= 0) & (inside_rank < k[:, None])).sum(dim=1)
    return hits.float() / k.clamp_min(1).float(), k > 0


def top_k_intersection(attention: torch.Tensor, mask: torch.Tensor, k: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Fraction of the k most attended pixels inside the mask (Theiner et al. 2022).

    ``k`` is a pixel count (int >= 1) or a fraction of the image (0 < k < 1). Undefined for an
    empty mask.
    """
    a, m = flat_pair(attention, mask, "top_k_intersection")
    n = pixel_count(k, a.shape[1])
    ranks = ranks_of(a)
    hits = (m & (ranks < n)).sum(dim=1)
    return hits.float() / n, m.any(dim=1)


def pixel_count(k: float, total: int) -> int:
    if isinstance(k, float) and 0 < k < 1:
        return max(1, round(k * total))
    if k >= 1 and float(k).is_integer() and k <= total:
        return int(k)
    raise MaskError(f"k={k!r} must be a fraction in (0, 1) or a pixel count in 1..{total}")


def pointing_game(attention: torch.Tensor, mask: torch.Tensor, tolerance: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """1 if a maximal pixel of ``A`` lies within ``tolerance`` pixels (Euclidean) of the mask, else 0.

    Zhang et al. (2016) use a 15-pixel tolerance at 224x224. With tied maxima, a hit is scored
    if any of them is inside (Quantus's convention). Undefined for an empty mask or a constant map.
    """
    check_pair(attention, mask, "pointing_game")
    size = tuple(mask.shape[-2:])
    a = upsample(attention.float(), size).flatten(1)
    m = mask > 0
    if tolerance > 0:
        r = int(tolerance)
        yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        disk = ((yy**2 + xx**2) <= tolerance**2).float().to(mask.device)[None, None]
        m = F.conv2d(m[:, None].float(), disk, padding=r)[:, 0] > 0.5
    m = m.flatten(1)
    top, low = a.max(dim=1, keepdim=True).values, a.min(dim=1).values
    hit = ((a == top) & m).any(dim=1).float()
    return hit, (mask.flatten(1) > 0).any(dim=1) & (top[:, 0] > low)


def iou(attention: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``|T & M| / |T | M|`` with ``T = (A - min A) / (max A - min A) >= threshold`` per image.

    Undefined for an empty mask or a constant map.
    """
    a, m = flat_pair(attention, mask, "iou")
    low, high = a.min(dim=1, keepdim=True).values, a.max(dim=1, keepdim=True).values
    span = high - low
    t = (a - low) / torch.where(span > 0, span, torch.ones_like(span)) >= threshold
    union = (t | m).sum(dim=1)
    return (t & m).sum(dim=1).float() / union.clamp_min(1).float(), m.any(dim=1) & (span[:, 0] > 0)


def roc_auc(attention: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Area under the ROC curve of ``A`` as a pixel classifier of ``M`` (Mann-Whitney U / (P N)).

    Ties count one half (mid-ranks). Undefined when the mask is empty or covers every pixel.
    """
    a, m = flat_pair(attention, mask, "roc_auc")
    n = a.shape[1]
    s = torch.sort(a, dim=1).values.contiguous()
    below = torch.searchsorted(s, a.contiguous(), right=False)
    upto = torch.searchsorted(s, a.contiguous(), right=True)
    midrank = (below + upto + 1).double() / 2.0  # 1-based average rank
    pos = m.sum(dim=1).double()
    neg = n - pos
    u = (midrank * m).sum(dim=1) - pos * (pos + 1) / 2
    defined = (pos > 0) & (neg > 0)
    return (u / (pos * neg).clamp_min(1)).float(), defined


LOCALISATION: dict[str, Metric] = {
    "pointing_game": pointing_game,
    "energy_pointing_game": energy_pointing_game,
    "relevance_mass_accuracy": relevance_mass_accuracy,
    "relevance_rank_accuracy": relevance_rank_accuracy,
    "top_k_intersection": top_k_intersection,
    "iou": iou,
    "roc_auc": roc_auc,
}


def convention(fn: Metric) -> str:
    """The formula line of a metric's docstring."""
    return " ".join((fn.__doc__ or fn.__name__).strip().split("\n\n")[0].split())


@dataclass
class MetricAccumulator:
    """Running mean of one metric over the images where it is defined; undefined ones are counted."""

    fn: Metric
    options: dict = field(default_factory=dict)
    total: float = 0.0
    count: int = 0
    undefined: int = 0

    def update(self, attention: torch.Tensor, mask: torch.Tensor) -> None:
        values, defined = self.fn(attention, mask, **self.options)
        self.total += values[defined].double().sum().item()
        self.count += int(defined.sum())
        self.undefined += int((~defined).sum())

    def compute(self) -> dict:
        return {"mean": self.total / self.count if self.count else None, "images": self.count,
                "undefined": self.undefined, "options": dict(self.options), "convention": convention(self.fn)}


class LocalisationAccumulator:
    """Every localisation metric at once. ``options`` maps a metric name to its keyword options."""

    def __init__(self, names: list[str] | None = None, options: dict[str, dict] | None = None):
        names = names or list(LOCALISATION)
        unknown = [n for n in names if n not in LOCALISATION]
        if unknown:
            raise MaskError(f"unknown localisation metrics {unknown}; known: {sorted(LOCALISATION)}")
        options = options or {}
        self.parts = {n: MetricAccumulator(LOCALISATION[n], dict(options.get(n, {}))) for n in names}

    def update(self, attention: torch.Tensor, mask: torch.Tensor) -> None:
        for part in self.parts.values():
            part.update(attention, mask)

    def compute(self) -> dict:
        return {n: part.compute() for n, part in self.parts.items()}
