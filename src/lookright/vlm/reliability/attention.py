"""Attention maps of the image tower for a caption, and their alignment with the shape masks.

* ``gradcam``: Grad-CAM on the tokens entering the last block for ``s = cos(v, t)`` between the
  image and its caption: ``w = mean_patches ds/dT``, ``map = ReLU(sum_k w_k T_k)`` on the patch grid.
* ``rollout`` (Abnar & Zuidema, 2020; Hugging Face CLIP only): per block the head-averaged
  attention ``A_l`` (recomputed from the block's own q/k projections), ``R = prod_l
  (0.5 A_l + 0.5 I)`` with rows renormalised; the map is the class token's row over the patches.

Both give ``(B, g, g)``; :func:`attention_alignment` scores them with the energy pointing game
against the shapes' masks (:mod:`lookright.metrics.localisation`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.metrics.localisation import energy_pointing_game
from lookright.vlm.reliability.encoder import ClipEncoder


def _grid(x: torch.Tensor) -> torch.Tensor:
    g = int(round(x.shape[1] ** 0.5))
    return x.view(x.shape[0], g, g)


def gradcam_map(encoder: ClipEncoder, pixels: torch.Tensor, captions: list[str]) -> torch.Tensor:
    clip = encoder.clip
    with torch.no_grad():
        text = encoder.text(captions)
    with torch.enable_grad():
        tokens = clip.tokens(clip.preprocess(pixels.to(clip.device))).detach().requires_grad_(True)
        v = F.normalize(clip.head(clip.finish(tokens)[:, 0]), dim=-1)
        (grad,) = torch.autograd.grad((v * text).sum(), tokens)
    patches, g = tokens[:, 1:].detach(), grad[:, 1:]
    cam = F.relu((patches * g.mean(dim=1, keepdim=True)).sum(dim=-1))
    return _grid(cam)


@torch.no_grad()
def rollout_map(encoder: ClipEncoder, pixels: torch.Tensor) -> torch.Tensor:
    clip = encoder.clip
    if clip.backend != "hf":
        raise ConfigError("attention rollout is implemented for Hugging Face CLIP models")
    vision = clip.model.vision_model if hasattr(clip.model, "vision_model") else clip.model.base_model.model.vision_model
    x = vision.pre_layrnorm(vision.embeddings(clip.preprocess(pixels.to(clip.device))))
    n = x.shape[1]
    rollout = torch.eye(n, device=x.device).expand(x.shape[0], n, n)
    for layer in vision.encoder.layers:
        attn = layer.self_attn
        h = layer.layer_norm1(x)
        heads = attn.num_heads
        q = attn.q_proj(h).view(x.shape[0], n, heads, -1).transpose(1, 2)
        k = attn.k_proj(h).view(x.shape[0], n, heads, -1).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1).mean(dim=1)
        a = 0.5 * a + 0.5 * torch.eye(n, device=x.device)
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
        out = layer(x, None)
        x = out[0] if isinstance(out, tuple) else out
    return _grid(rollout[:, 0, 1:])


def attention_alignment(encoder: ClipEncoder, pixels: torch.Tensor, captions: list[str], masks: torch.Tensor,
                        batch: int = 100) -> dict:
    """Mean energy pointing game of each map against ``masks (B, H, W)``, and the maps themselves."""
    maps = {"gradcam": [], "rollout": []}
    for s in range(0, len(pixels), batch):
        maps["gradcam"].append(gradcam_map(encoder, pixels[s:s + batch], captions[s:s + batch]).cpu())
        if encoder.clip.backend == "hf":
            maps["rollout"].append(rollout_map(encoder, pixels[s:s + batch]).cpu())
    out, tensors = {}, {}
    for name, parts in maps.items():
        if not parts:
            continue
        m = torch.cat(parts)
        value, defined = energy_pointing_game(m, masks)
        out[name] = float(value[defined].mean()) if defined.any() else float("nan")
        tensors[name] = m
    out["uniform"] = float(masks.flatten(1).float().mean())
    return {"energy_pointing_game": out, "maps": tensors}
