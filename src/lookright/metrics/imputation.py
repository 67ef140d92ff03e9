"""Noisy linear imputation (ROAD, Rong et al. 2022), batched over images and channels.

Each removed pixel takes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct
and 1/12 for the 4 diagonal ones; neighbours outside the image are absent):
``d_p x_p - sum_{q in U} w_pq x_q = sum_{q not in U} w_pq x_q`` for every removed pixel p, with
``d_p`` the sum of p's in-image neighbour weights. This system is symmetric positive definite
whenever every connected removed region touches a kept pixel, and is solved matrix-free with
conjugate gradients (one 3x3 stencil per iteration) for all images at once. Gaussian noise
(std ``noise_std``, in input units) is then added to the imputed pixels only.

Hand-written because the reference implementation builds one scipy sparse matrix per image
(a Python loop), which is what makes ROAD slow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def neighbour_sum(v: torch.Tensor) -> torch.Tensor:
    """``sum_q w_pq v_q`` over the 8 neighbours, zero outside the image.

    The stencil is ``(k k^T - 4 delta) / 12`` with ``k = [1, 2, 1]``: two 1-D passes of in-place
    adds, several times faster on CPU than a 3x3 convolution with one input channel.
    """
    p = F.pad(v, (1, 1, 1, 1))
    rows = p[..., :-2, :] + p[..., 2:, :]
    rows.add_(p[..., 1:-1, :], alpha=2)
    out = rows[..., :-2] + rows[..., 2:]
    return out.add_(rows[..., 1:-1], alpha=2).add_(v, alpha=-4).mul_(1 / 12)


@torch.no_grad()
def noisy_linear_impute(
    x: torch.Tensor,
    removed: torch.Tensor,
    noise_std: float = 0.01,
    generator: torch.Generator | None = None,
    tol: float = 1e-4,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Return ``x`` ``(B, C, H, W)`` with the pixels where ``removed`` ``(B, H, W)`` is True imputed.

    Conjugate gradients stop when every system's residual is below ``tol`` times its right-hand
    side (relative; 1e-4 changes imputed values by about 2e-4 in the tests' units).
    """
    x = x.float()
    u = removed[:, None].to(x.dtype).expand_as(x).contiguous()
    degree = neighbour_sum(torch.ones_like(x[:1, :1]))
    rhs = u * neighbour_sum(x * (1 - u))

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
        ap = (degree * p).sub_(neighbour_sum(u * p)).mul_(u)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rr / pap.clamp_min(1e-30), torch.zeros_like(rr))
        v.addcmul_(alpha.expand_as(p), p)
        r.sub_(alpha * ap)
        rr_new = dot(r, r)
        beta = torch.where(rr > 0, rr_new / rr.clamp_min(1e-30), torch.zeros_like(rr))
        p = p.mul_(beta).add_(r)
        rr = rr_new
    if noise_std:
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x) if generator is not None \
            else torch.randn_like(x)
        v = v + noise_std * noise
    return torch.where(u > 0, v, x)
