"""Dense prompt-driven maps over a CLIP ViT, batched: ``method(clip, images, prompts) -> (B, g, g)``.

Every method scores each image against its own foreground prompt and the shared background
prompts (``PromptSet``): candidates ``c = [fg_i, bg_1, ..., bg_K]`` with L2-normalised text
embeddings ``t_c``. Tokens ``T`` are those entering the last ViT block (class token first, then
a ``g x g`` grid of patches); ``head`` is the final layer norm and projection.

* ``gradcam`` (CLIP-ES): ``s = softmax_c(scale * cos(head(block(T))_cls, t_c))[fg]``, the
  foreground probability with the background prompts competing; ``w = mean_patches dS/dT``;
  ``map = ReLU(sum_k w_k T_k)`` over the patch tokens. The gradient is taken of the log-odds
  ``log(s / (1 - s)) = l_fg - logsumexp(l_bg)`` (``l`` the scaled similarities), which is
  ``dS/dT / (s (1 - s))``: the same map up to a positive factor per image (maps are min-max
  normalised per image downstream), but one that does not vanish when a confident CLIP's ``s``
  rounds to 1 in float32. Without background prompts the gradient is that of ``l_fg``.
* ``maskclip``: value embeddings of the last block through its output projection, per patch:
  ``z_p = head(out_proj(v_proj(ln_1(T_p))))``; ``map = softmax_c(scale * cos(z_p, t_c))[fg]``.
* ``surgery`` (feature surgery): the MaskCLIP similarities minus what is common to all
  candidates, ``map = ReLU(cos(z_p, t_fg) - mean_c cos(z_p, t_c))``; with
  ``redundant="empty"`` the similarity to the empty prompt is subtracted instead.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.registry import Registry
from lookright.vlm.backends import ClipBundle


def template_problem(template: str, fields: set[str], key: str) -> str | None:
    """Why ``template`` is not a prompt template whose only replacement fields are ``fields``
    (``""`` is ``{}``); None when it is. Literal braces are written ``{{`` and ``}}``."""
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"{key} {template!r} is not a valid template ({exc}); write literal braces as {{{{ and }}}}"
    unknown = used - fields
    if unknown:
        allowed = " or ".join("{" + f + "}" for f in sorted(fields))
        return (f"{key} {template!r} has the placeholder(s) {', '.join('{' + u + '}' for u in sorted(unknown))}; "
                f"the only one filled in is {allowed}")
    return None


@dataclass
class PromptSet:
    """Foreground template (``{name}`` is filled with the class name of each image's label, e.g.
    ``"a clean origami {name}."``; without ``{name}`` one prompt serves every image) and background
    words, each turned into a prompt by ``background_template`` (``{}`` is the word). No other
    placeholder is allowed; literal braces are ``{{`` and ``}}``."""

    foreground: str = "a handwritten digit {name}"
    background: list[str] = field(default_factory=lambda: ["background", "black", "dark"])
    background_template: str = "{}"
    class_names: list[str] = field(default_factory=lambda: ["zero", "one", "two", "three", "four", "five", "six",
                                                            "seven", "eight", "nine"])

    def __post_init__(self) -> None:
        if not self.foreground.strip():
            raise ConfigError("the foreground prompt is empty: give a prompt such as 'a handwritten digit {name}'")
        for problem in (template_problem(self.foreground, {"name"}, "the foreground prompt"),
                        template_problem(self.background_template, {""}, "the background template")):
            if problem:
                raise ConfigError(problem)
        if "{name}" in self.foreground and not self.class_names:
            raise ConfigError("the foreground prompt uses {name} but class_names is empty")

    def foreground_prompts(self) -> list[str]:
        if "{name}" not in self.foreground:
            return [self.foreground.format()]
        return [self.foreground.format(name=n) for n in self.class_names]

    def background_prompts(self) -> list[str]:
        return [self.background_template.format(w) for w in self.background]

    def foreground_index(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
        if "{name}" not in self.foreground:
            return torch.zeros(batch, dtype=torch.long)
        if labels is None:
            raise ConfigError("the foreground prompt uses {name}: pass each image's label")
        labels = torch.as_tensor(labels).long().cpu()
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ConfigError(f"labels must index class_names (0..{len(self.class_names) - 1})")
        return labels


DENSE_MAPS: Registry = Registry("dense map method")


def _text_candidates(clip: ClipBundle, prompts: PromptSet, labels, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fg (B, D), bg (K, D))`` text embeddings."""
    fg_all = clip.encode_text(prompts.foreground_prompts())
    bg = clip.encode_text(prompts.background_prompts()) if prompts.background else fg_all[:0]
    return fg_all[prompts.foreground_index(labels, batch).to(fg_all.device)], bg


def _candidate_logits(z: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(B, ..., 1 + K)`` of normalised ``z (B, ..., D)`` with ``[fg_i, bg...]``."""
    z = F.normalize(z, dim=-1)
    shape = (z.shape[0],) + (1,) * (z.dim() - 2)
    s_fg = (z * fg.view(*shape, -1)).sum(dim=-1, keepdim=True)
    return torch.cat([s_fg, z @ bg.T], dim=-1)


def _grid(values: torch.Tensor, clip: ClipBundle) -> torch.Tensor:
    return values.reshape(values.shape[0], clip.grid, clip.grid)


@DENSE_MAPS.register("gradcam")
def gradcam_map(clip: ClipBundle, images: torch.Tensor, prompts: PromptSet, labels=None) -> torch.Tensor:
    fg, bg = _text_candidates(clip, prompts, labels, images.shape[0])
    with torch.no_grad():  # the gradient starts at the last block: no graph through the blocks below
        tokens = clip.tokens(clip.preprocess(images))
    with torch.enable_grad():
        tokens.requires_grad_(True)
        z = clip.head(clip.finish(tokens)[:, 0])
        logits = clip.logit_scale.detach() * _candidate_logits(z, fg.detach(), bg.detach())
        score = logits[:, 0] - logits[:, 1:].logsumexp(dim=-1) if logits.shape[1] > 1 else logits[:, 0]
        (grad,) = torch.autograd.grad(score.sum(), tokens)
    weights = grad[:, 1:].mean(dim=1, keepdim=True)
    return _grid(F.relu((weights * tokens[:, 1:].detach()).sum(dim=-1)), clip)


def _patch_similarities(clip: ClipBundle, images: torch.Tensor, fg, bg) -> torch.Tensor:
    tokens = clip.tokens(clip.preprocess(images))
    z = clip.head(clip.value_path(tokens[:, 1:]))
    return _candidate_logits(z, fg, bg)


@DENSE_MAPS.register("maskclip")
@torch.no_grad()
def maskclip_map(clip: ClipBundle, images: torch.Tensor, prompts: PromptSet, labels=None) -> torch.Tensor:
    fg, bg = _text_candidates(clip, prompts, labels, images.shape[0])
    sims = _patch_similarities(clip, images, fg, bg)
    return _grid((clip.logit_scale * sims).softmax(dim=-1)[..., 0], clip)


@DENSE_MAPS.register("surgery")
@torch.no_grad()
def surgery_map(clip: ClipBundle, images: torch.Tensor, prompts: PromptSet, labels=None,
                redundant: str = "mean") -> torch.Tensor:
    fg, bg = _text_candidates(clip, prompts, labels, images.shape[0])
    sims = _patch_similarities(clip, images, fg, bg)
    if redundant == "mean":
        common = sims.mean(dim=-1)
    elif redundant == "empty":
        empty = clip.encode_text([""])
        common = _candidate_logits(clip.head(clip.value_path(clip.tokens(clip.preprocess(images))[:, 1:])),
                                   empty.expand(images.shape[0], -1), empty[:0])[..., 0]
    else:
        raise ConfigError(f"surgery redundant must be 'mean' or 'empty', got {redundant!r}")
    return _grid(F.relu(sims[..., 0] - common), clip)


def dense_map(method: str, clip: ClipBundle, images: torch.Tensor, prompts: PromptSet, labels=None,
              **options) -> torch.Tensor:
    """``(B, g, g)`` map of ``method`` (``gradcam``, ``maskclip``, ``surgery``)."""
    return DENSE_MAPS.get(method)(clip, images, prompts, labels, **options)
