"""Attention faithfulness: does removing what the map points at change the decision?

Conventions:

* ``x`` is the model input ``(B, C, H, W)``; ``attention`` ``(B, h, w)`` is upsampled bilinearly
  to ``(H, W)``. Pixels are ordered from most to least attended, ties by row-major position.
  Removing a pixel replaces all its channels by the *substrate*: ``"zero"`` (0 in the model's
  input space), ``"blur"`` (a Gaussian blur of the image, ``blur_sigma`` pixels), or a number.
* ``target`` ``(B,)`` is the class whose softmax probability is tracked (the evaluation uses the
  prediction on the clean image).
* Deletion (insertion) curves: ``p_i`` = probability of the target after removing (inserting)
  the ``round(i / steps * H * W)`` most attended pixels, ``i = 0..steps``. Normalised AUC =
  trapezoidal area over the removed fraction in [0, 1] (Petsiuk et al. 2018): lower is more
  faithful for deletion, higher for insertion.
* All perturbed images of a chunk of images and all steps go through the model in one batch.
* **Faithfulness** (one definition for classifiers and agents, :func:`faithfulness`): at a removed
  fraction ``k``, the mean fall of the tracked probability when the top-``k`` attended pixels
  are removed, minus its mean fall when ``k`` random pixels are removed,
  ``F(k) = E[p - p_top(k)] - E[p - p_random(k)]``: 0 for a map no better than chance, higher
  when the decision depends on what the map points at. A method's gain over a reference is
  ``F_method / F_reference - 1`` (CAMAL reports +35% over its baselines).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from lookright.errors import ConfigError, MaskError
from lookright.metrics.imputation import noisy_linear_impute
from lookright.metrics.localisation import check_pair, ranks_of, upsample


def substrate_of(x: torch.Tensor, substrate: str | float, blur_sigma: float = 5.0) -> torch.Tensor:
    if substrate == "zero":
        return torch.zeros_like(x)
    if substrate == "blur":
        k = 2 * math.ceil(3 * blur_sigma) + 1
        return gaussian_blur(x, [k, k], [blur_sigma, blur_sigma])
    if isinstance(substrate, (int, float)) and not isinstance(substrate, bool):
        return torch.full_like(x, float(substrate))
    raise ConfigError(f"substrate {substrate!r} must be 'zero', 'blur' or a number")


def attention_ranks(x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Rank ``(B, H*W)`` of each input pixel by attention (0 = most attended)."""
    if x.dim() != 4:
        raise MaskError(f"inputs must be (B, C, H, W), got {tuple(x.shape)}")
    check_pair(attention, x[:, 0], "faithfulness")
    return ranks_of(upsample(attention.float(), tuple(x.shape[-2:])).flatten(1))


@torch.no_grad()
def _probabilities(model, images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability of ``target`` and the predicted class, for ``images`` ``(S, b, C, H, W)``."""
    s, b = images.shape[:2]
    logits = model(images.flatten(0, 1)).float()
    prob = F.softmax(logits, dim=1).view(s, b, -1)
    return prob.gather(2, target.view(1, b, 1).expand(s, b, 1))[..., 0], logits.argmax(1).view(s, b)


def _chunks(n: int, per_image: int, batch_size: int):
    step = max(1, batch_size // max(1, per_image))
    for i in range(0, n, step):
        yield slice(i, min(n, i + step))


def fraction_counts(fractions, total: int) -> torch.Tensor:
    return torch.tensor([round(f * total) for f in fractions])


@torch.no_grad()
def perturbation_curve(
    model, x: torch.Tensor, attention: torch.Tensor, target: torch.Tensor, mode: str = "deletion",
    steps: int = 20, substrate: str | float = "zero", blur_sigma: float = 5.0, batch_size: int = 2048,
) -> torch.Tensor:
    """Probability of ``target`` ``(B, steps + 1)`` as the most attended pixels are deleted or inserted."""
    if mode not in ("deletion", "insertion"):
        raise ConfigError(f"mode {mode!r} must be 'deletion' or 'insertion'")
    if steps < 1:
        raise ConfigError(f"steps={steps} must be >= 1")
    ranks = attention_ranks(x, attention)
    counts = fraction_counts([i / steps for i in range(steps + 1)], ranks.shape[1]).to(x.device)
    out = []
    for part in _chunks(len(x), steps + 1, batch_size):
        xb, base = x[part], substrate_of(x[part], substrate, blur_sigma)
        top = ranks[part][None] < counts[:, None, None]  # (S, b, N): among the first n_i pixels
        top = top.view(steps + 1, -1, 1, *x.shape[-2:])
        start, end = (xb, base) if mode == "deletion" else (base, xb)
        images = torch.where(top, end[None], start[None])
        out.append(_probabilities(model, images, target[part])[0].T)
    return torch.cat(out)


def normalised_auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area ``(B,)`` of curves ``(B, S + 1)`` sampled evenly on [0, 1]."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


@torch.no_grad()
def removal_effect(
    model, x: torch.Tensor, attention: torch.Tensor, target: torch.Tensor,
    fractions=(0.05, 0.1, 0.2, 0.5), substrate: str | float = "zero", blur_sigma: float = 5.0,
    generator: torch.Generator | None = None, batch_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """Remove the top-k% attended pixels, or k% pixels drawn at random, for each k in ``fractions``.

    Returns per-image tensors: ``prob_clean`` ``(B,)``, and ``(B, K)`` tensors ``prob_top``,
    ``prob_random``, ``flip_top``, ``flip_random`` (1 where the predicted class differs from
    ``target`` after removal). The random pixels are a uniform permutation per image from ``generator``.
    """
    ranks = attention_ranks(x, attention)
    n = ranks.shape[1]
    noise = torch.rand(ranks.shape, generator=generator).to(x.device) if generator is not None \
        else torch.rand(ranks.shape, device=x.device)
    random_ranks = noise.argsort(dim=1).argsort(dim=1)
    counts = fraction_counts(fractions, n).to(x.device)
    k = len(counts)
    parts = {key: [] for key in ("prob_clean", "prob_top", "prob_random", "flip_top", "flip_random")}
    for part in _chunks(len(x), 2 * k + 1, batch_size):
        xb, base = x[part], substrate_of(x[part], substrate, blur_sigma)
        removed = torch.cat([
            torch.zeros(1, len(xb), n, dtype=torch.bool, device=x.device),
            ranks[part][None] < counts[:, None, None],
            random_ranks[part][None] < counts[:, None, None],
        ]).view(2 * k + 1, -1, 1, *x.shape[-2:])
        prob, pred = _probabilities(model, torch.where(removed, base[None], xb[None]), target[part])
        flip = (pred != target[part][None]).float()
        parts["prob_clean"].append(prob[0])
        parts["prob_top"].append(prob[1 : k + 1].T)
        parts["prob_random"].append(prob[k + 1 :].T)
        parts["flip_top"].append(flip[1 : k + 1].T)
        parts["flip_random"].append(flip[k + 1 :].T)
    return {key: torch.cat(v) for key, v in parts.items()}


def faithfulness(prob_drop_top: list[float] | float, prob_drop_random: list[float] | float):
    """``F = prob_drop_top - prob_drop_random`` per removed fraction (module docstring)."""
    if isinstance(prob_drop_top, (int, float)):
        return float(prob_drop_top) - float(prob_drop_random)
    return [float(t) - float(r) for t, r in zip(prob_drop_top, prob_drop_random, strict=True)]


@torch.no_grad()
def road(
    model, x: torch.Tensor, attention: torch.Tensor, target: torch.Tensor,
    fractions=(0.1, 0.3, 0.5, 0.7, 0.9), order: str = "morf", noise_std: float = 0.01,
    generator: torch.Generator | None = None, batch_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """ROAD (Rong et al. 2022): remove the most (``morf``) or least (``lerf``) attended k% pixels,
    impute them with :func:`noisy_linear_impute`, and record ``prob`` and ``correct``
    (prediction == target) ``(B, K)``. MoRF: lower is more faithful; LeRF: higher.
    """
    if order not in ("morf", "lerf"):
        raise ConfigError(f"order {order!r} must be 'morf' or 'lerf'")
    ranks = attention_ranks(x, attention)
    n = ranks.shape[1]
    if order == "lerf":
        ranks = n - 1 - ranks
    counts = fraction_counts(fractions, n).to(x.device)
    k = len(counts)
    probs, correct = [], []
    for part in _chunks(len(x), k, batch_size):
        xb = x[part]
        removed = (ranks[part][None] < counts[:, None, None]).view(k * len(xb), *x.shape[-2:])
        images = noisy_linear_impute(xb.repeat(k, 1, 1, 1), removed, noise_std, generator)
        prob, pred = _probabilities(model, images.view(k, len(xb), *x.shape[1:]), target[part])
        probs.append(prob.T)
        correct.append((pred == target[part][None]).float().T)
    return {"prob": torch.cat(probs), "correct": torch.cat(correct)}
