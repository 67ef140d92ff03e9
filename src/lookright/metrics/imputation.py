"""Noisy linear imputation (ROAD, Rong et al. 2022), batched over images and channels.

Each removed pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct
and 1/12 for the 4 diagonal ones; neighbours outside the image are absent):
``d_p x_p - sum_{q in U} w_pq x_q = sum_{q not in U} w_pq x_q`` for every removed pixel p, with
``d_p`` the sum of p's in-image neighbour weights. This system is symmetric positive definite
whenever every connected removed region touches a kept pixel, and is solved matrix-free with
conjugate gradients (one 3x3 convolution per iteration) for all images at once. Gaussian noise
(std ``noise_std``, in input units) is then added to the imputed pixels only.

Hand-written because the reference implementation builds one scipy sparse matrix per image
(a Python loop), which is what makes ROAD slow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_W = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def _neighbour_sum(v: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    b, c, h, w = v.shape
    return F.conv2d(v.reshape(b * c, 1, h, w), weights, padding=1).reshape(b, c, h, w)


@torch.no_grad()
def noisy_linear_impute(
    x: torch.Tensor,
    removed: torch.Tensor,
    noise_std: float = 0.01,
    generator: torch.Generator | None = None,
    tol: float = 1e-6,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Return ``x`` ``(B, C, H, W)`` with the pixels where ``removed`` ``(B, H, W)`` is True imputed."""
    x = x.float()
    u = removed[:, None].to(x.dtype).expand_as(x)
    weights = _W.to(x)[None, None]
    degree = _neighbour_sum(torch.ones_like(x[:1, :1]), weights)
    rhs = u * _neighbour_sum(x * (1 - u), weights)

    def apply(v):
        return u * (degree * v - _neighbour_sum(u * v, weights))

    def dot(p, q):
        return (p * q).sum(dim=(2, 3), keepdim=True)

    v = torch.zeros_like(x)
    r = rhs.clone()
    p = r.clone()
    rr = dot(r, r)
    limit = tol * tol * dot(rhs, rhs).clamp_min(1e-30)
    for _ in range(max_iter or 4 * (x.shape[-1] + x.shape[-2])):
        if bool((rr <= limit).all()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rr / pap.clamp_min(1e-30), torch.zeros_like(rr))
        v = v + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        p = r + torch.where(rr > 0, rr_new / rr.clamp_min(1e-30), torch.zeros_like(rr)) * p
        rr = rr_new
    if noise_std:
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x) if generator is not None \
            else torch.randn_like(x)
        v = v + noise_std * noise
    return torch.where(u > 0, v, x)
