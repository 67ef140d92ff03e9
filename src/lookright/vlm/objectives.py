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

No objective sees a mask: the only supervision is the caption of each image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError

OBJECTIVES = ("cls", "patch", "patch-bg")


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


def clip_loss(objective: str, clip, pixels: torch.Tensor, text: dict, patch_weight: float = 1.0,
              patch_tau: float = 0.1, background: torch.Tensor | None = None,
              empty: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The loss of ``objective`` on one batch (``clip`` a :class:`ClipBundle` of the model in
    training, ``pixels`` normalised images, ``text`` its tokenizer's output; ``patch-bg`` also
    needs the background captions' tokens ``background`` and the all-black images ``empty``);
    returns the loss and its parts as floats."""
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
