"""Pretraining objectives of the small CLIP (``pretrain_clip(objective=...)``).

Notation: ``v_i`` the class-token image embedding, ``z_ip`` the embedding of patch ``p`` of image
``i`` on MaskCLIP's dense path (the last block's value embeddings through its output projection,
the final norm and the projection, :meth:`ClipBundle.value_path`), ``t_j`` the caption
embedding, all L2-normalised; ``s`` CLIP's learnable scale; ``NCE(L)`` the symmetric InfoNCE of
a ``(B, B)`` logit matrix whose diagonal holds the matching pairs.

* ``cls``: CLIP's loss on the class token, ``NCE(s v_i . t_j)``. The patch tokens are never
  trained to mean anything in the joint space.
* ``patch``: ``cls`` plus a patch-level multiple-instance term (after PACL, Mukhoti et al. 2023):
  ``a_ijp = softmax_p(z_ip . t_j / tau)``, ``S_ij = sum_p a_ijp z_ip . t_j`` (a soft maximum over
  patches), loss ``NCE(s S) * patch_weight``. A caption has to be matched by *some* patches of its
  image and by no patch of the other images, so patches on the described object move to its
  text, while all-black images captioned "background" pull black patches to the background
  words. The dense maps read exactly ``z_ip``.
* ``patch-bg``: ``patch`` plus a figure-ground term. Each patch chooses between its image's
  caption and the background text ``t_bg`` (the mean embedding of the corpus's background
  captions): ``q_ip = softmax(s [z_ip . t_i, z_ip . t_bg])_0``. An image whose caption names
  something has both figure and ground, ``-log smax_p q_ip - log smax_p (1 - q_ip)`` (``smax``
  the ``tau`` soft maximum over patches); an all-black image is ground everywhere,
  ``-mean_p log(1 - q_ip)``. Weighted by ``patch_weight`` like the patch term.
* ``region``: ``cls`` plus a region term on side-by-side composites of the batch's images
  (:mod:`lookright.vlm.composites`: image ``i`` on the left, image ``i + B/2`` on the right, either
  side left black with probability ``p_empty``). Candidates are the batch's captions and the
  background text ``t_bg``. A side ``R`` holding image ``i`` must pick ``t_i`` among the captions:
  ``CE(s S_R, i)`` with ``S_Rj = sum_{p in R} softmax_p(z_p . t_j / tau) z_p . t_j``; every patch
  of an empty side must pick the background, ``CE(s z_p . t, bg)``. Because each side is scored
  by its own patches only, what a patch encodes has to be what lies near it, not the whole
  image; black patches beside an object learn "background". Weighted by ``patch_weight``.

No objective sees a mask: the only supervision is the caption of each image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.vlm.composites import side_by_side

OBJECTIVES = ("cls", "patch", "patch-bg", "region")


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown pretraining objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of a ``(B, B)`` image-by-text logit matrix (matches on the diagonal)."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def patch_pooled_similarity(patches: torch.Tensor, texts: torch.Tensor, tau: float) -> torch.Tensor:
    """``(B, P, D)`` normalised patch embeddings, ``(T, D)`` normalised texts -> ``(B, T)`` soft-max
    pooled similarities ``S_ij = sum_p softmax_p(z_ip . t_j / tau) z_ip . t_j``."""
    sims = torch.einsum("bpd,td->btp", patches, texts)
    return ((sims / tau).softmax(dim=-1) * sims).sum(dim=-1)


def soft_max(values: torch.Tensor, tau: float) -> torch.Tensor:
    """``sum_p softmax_p(values / tau) values`` over the last dimension."""
    return ((values / tau).softmax(dim=-1) * values).sum(dim=-1)


def figure_ground(patches: torch.Tensor, texts: torch.Tensor, background: torch.Tensor, empty: torch.Tensor,
                  scale: torch.Tensor, tau: float) -> torch.Tensor:
    """The ``patch-bg`` term: ``patches (B, P, D)``, own captions ``texts (B, D)``, ``background (D,)``
    (all normalised), ``empty (B,)`` True for all-black images."""
    logits = scale * torch.stack([(patches * texts[:, None]).sum(-1), patches @ background], dim=-1)
    log_q = logits.log_softmax(dim=-1)  # (B, P, 2): log figure, log ground
    q = log_q[..., 0].exp()
    eps = 1e-6
    both = -torch.log(soft_max(q, tau) + eps) - torch.log(soft_max(1 - q, tau) + eps)
    ground = -log_q[..., 1].mean(dim=-1)
    return torch.where(empty, ground, both).mean()


def region_term(clip, pixels: torch.Tensor, texts: torch.Tensor, background: torch.Tensor, empty: torch.Tensor,
                scale: torch.Tensor, tau: float, p_empty: float) -> torch.Tensor:
    """The ``region`` term: ``pixels (B, C, S, S)`` normalised, ``texts (B, D)`` and ``background (D,)``
    normalised, ``empty (B,)`` True for the all-black (background-captioned) images."""
    half = pixels.shape[0] // 2
    black = -torch.tensor(clip.mean) / torch.tensor(clip.std)
    composite, regions, blank = side_by_side(pixels[:half], pixels[half:2 * half], clip.patch_size, p_empty, black)
    sources = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1)
    blank = blank | empty[sources]
    z = F.normalize(clip.head(clip.value_path(clip.tokens(composite)[:, 1:])), dim=-1)
    candidates = torch.cat([texts, background[None]])
    sims = torch.einsum("hpd,td->htp", z, candidates)  # (B/2, B + 1, P)
    bg = candidates.shape[0] - 1
    losses, count = [], 0
    for side in range(2):
        cols = sims[..., regions[side]]
        held = ~blank[:, side]
        if held.any():
            captions = cols[held, :bg]  # a side's black patches would match the background: not a candidate here
            pooled = ((captions / tau).softmax(dim=-1) * captions).sum(dim=-1)
            losses.append(F.cross_entropy(scale * pooled, sources[held, side], reduction="sum"))
        if (~held).any():
            per_patch = (scale * cols[~held]).transpose(1, 2).reshape(-1, candidates.shape[0])
            target = torch.full((per_patch.shape[0],), bg, dtype=torch.long)
            losses.append(F.cross_entropy(per_patch, target, reduction="mean") * int((~held).sum()))
        count += half
    return torch.stack(losses).sum() / count


def clip_loss(objective: str, clip, pixels: torch.Tensor, text: dict, patch_weight: float = 1.0,
              patch_tau: float = 0.1, background: torch.Tensor | None = None,
              empty: torch.Tensor | None = None, p_empty: float = 0.25) -> tuple[torch.Tensor, dict]:
    """The loss of ``objective`` on one batch (``clip`` a :class:`ClipBundle` of the model in
    training, ``pixels`` normalised images, ``text`` its tokenizer's output; ``patch-bg`` and
    ``region`` also need the background captions' tokens ``background`` and the all-black images
    ``empty``; ``p_empty`` is the ``region`` composites' chance of an empty side); returns the loss
    and its parts as floats."""
    check_objective(objective)
    if objective == "cls":  # the model's own CLIP loss, exactly as before the patch objectives existed
        loss = clip.model(**text, pixel_values=pixels, return_loss=True).loss
        return loss, {"cls": loss.item()}
    tokens = clip.tokens(pixels)
    image = F.normalize(clip.head(clip.finish(tokens)[:, 0]), dim=-1)
    texts = F.normalize(clip._text(text), dim=-1)
    scale = clip.logit_scale
    loss = info_nce(scale * image @ texts.T)
    parts = {"cls": loss.item()}
    if objective == "region":
        bg = F.normalize(F.normalize(clip._text(background), dim=-1).mean(dim=0), dim=-1)
        region = region_term(clip, pixels, texts, bg, empty, scale, patch_tau, p_empty)
        parts["region"] = region.item()
        return loss + patch_weight * region, parts
    patches = F.normalize(clip.head(clip.value_path(tokens[:, 1:])), dim=-1)
    patch = info_nce(scale * patch_pooled_similarity(patches, texts, patch_tau))
    parts["patch"] = patch.item()
    loss = loss + patch_weight * patch
    if objective == "patch-bg":
        bg = F.normalize(F.normalize(clip._text(background), dim=-1).mean(dim=0), dim=-1)
        ground = figure_ground(patches, texts, bg, empty, scale, patch_tau)
        parts["figure_ground"] = ground.item()
        loss = loss + patch_weight * ground
    return loss, parts
