"""Edge-aware refinement of a foreground probability: a dense CRF by windowed mean field, in torch.

A fully connected CRF (Kraehenbuehl & Koltun 2011) with two labels (background, foreground), a
Potts compatibility and the usual two Gaussian kernels, restricted to a ``(2r+1) x (2r+1)``
window around each pixel (so it is exact for ``r >= H, W`` and linear in the pixels otherwise):

``k(i, j) = w_app exp(-|p_i - p_j|^2 / 2 theta_a^2 - |I_i - I_j|^2 / 2 theta_b^2)
          + w_smooth exp(-|p_i - p_j|^2 / 2 theta_g^2)``,  ``j != i`` in the window,

with ``p`` pixel positions and ``I`` colours in ``[0, 1]``. The unary is ``-log q`` of the
incoming probability ``q`` (clipped to ``[eps, 1 - eps]``); each of ``iterations`` mean-field
steps sets ``Q_i(l) = softmax_l(log q_i(l) + sum_j k(i, j) Q_j(l))`` (the Potts message up to a
constant per pixel). The result is ``Q_i(foreground)``; a mask is ``Q >= 0.5``.

No maintained dense-CRF package installs here (``pydensecrf`` is not on the package index this
project uses; ``SimpleCRF`` ships only a C++ source build), hence this implementation; it runs
batched on any device and needs no compiler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class CRFSettings(BaseModel):
    """The CRF stage of the VLM teacher (``target.vlm.crf``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    iterations: int = Field(5, ge=1)
    radius: int = Field(3, ge=1, description="window half-size in pixels")
    w_appearance: float = Field(3.0, ge=0)
    theta_position: float = Field(3.0, gt=0, description="theta_a, pixels")
    theta_colour: float = Field(0.1, gt=0, description="theta_b, colour distance in [0, 1] units")
    w_smooth: float = Field(1.0, ge=0)
    theta_smooth: float = Field(1.0, gt=0, description="theta_g, pixels")


def _window(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, K, H*W)``: the ``K = (2r+1)^2`` neighbours of each pixel (zero padded)."""
    b, c, h, w = x.shape
    k = 2 * radius + 1
    return F.unfold(x, k, padding=radius).view(b, c, k * k, h * w)


def pairwise_kernel(images: torch.Tensor, s: CRFSettings) -> torch.Tensor:
    """``(B, C, H, W)`` images in ``[0, 1]`` -> ``(B, K, H*W)`` kernel weights ``k(i, j)`` over the
    window (zero for the pixel itself and for neighbours outside the image)."""
    b, c, h, w = images.shape
    r = s.radius
    offsets = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    dist2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).flatten()[None, :, None]  # (1, K, 1)
    colour2 = ((_window(images, r) - images.reshape(b, c, 1, h * w)) ** 2).sum(dim=1)  # (B, K, HW)
    inside = _window(torch.ones(1, 1, h, w, device=images.device, dtype=images.dtype), r)[:, 0]
    kernel = (s.w_appearance * torch.exp(-dist2 / (2 * s.theta_position ** 2) - colour2 / (2 * s.theta_colour ** 2))
              + s.w_smooth * torch.exp(-dist2 / (2 * s.theta_smooth ** 2)))
    kernel = kernel * inside
    kernel[:, (2 * r + 1) ** 2 // 2] = 0  # no message from a pixel to itself
    return kernel


@torch.no_grad()
def crf_refine(images: torch.Tensor, prob: torch.Tensor, settings: CRFSettings, eps: float = 1e-4) -> torch.Tensor:
    """``(B, C, H, W)`` images in ``[0, 1]``, ``(B, H, W)`` foreground probability -> ``(B, H, W)`` refined."""
    b, h, w = prob.shape
    kernel = pairwise_kernel(images.float(), settings)
    q = prob.float().clamp(eps, 1 - eps)
    unary = torch.stack([torch.log1p(-q), torch.log(q)], dim=1)  # (B, 2, H, W): log probability per label
    marginals = unary.softmax(dim=1)
    for _ in range(settings.iterations):
        message = (_window(marginals, settings.radius) * kernel[:, None]).sum(dim=2).view(b, 2, h, w)
        marginals = (unary + message).softmax(dim=1)
    return marginals[:, 1]
