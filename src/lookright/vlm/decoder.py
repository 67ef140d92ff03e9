"""A light segmentation decoder fitted on the teacher's own pseudo-labels (the WeCLIP+ step).

The frozen CLIP's seed maps are coarse (one value per patch) and noisy from image to image. A
small fully convolutional network that sees the pixels (:class:`MaskDecoder`: 3 x 3
convolutions with ``dilations`` 1, 2, 4, 1 by default, so a 17-pixel receptive field besides the
per-image group-norm statistics, then a 1 x 1 logit) is
fitted on the benchmark's **training images** with the seeds as labels, and then draws the masks
of every split: it learns, over the whole training set, what the seeds agree on.

Labels (per training image, from the seed soft map ``m`` in ``[0, 1]`` and its threshold ``t``;
with ``labels: crf`` from the CRF's probability of the seed and ``t = 1/2``, which follows the
image's edges but lights only the parts of the object the seed found):
foreground where ``m >= t + band``, background where ``m < t - band``, ignored in between and on
images whose seed mask is empty (with ``drop_border``, also on images whose seed mask lies only
along the image border: :func:`lookright.vlm.components.only_on_the_border`). Loss: binary
cross-entropy on the labelled pixels, AdamW, ``epochs`` passes over at most ``max_images``
images in a fixed order drawn from ``seed``.

Convergence check (:func:`fit_decoder` returns it; the teacher warns): the final epoch's loss is
compared with the loss of the best constant prediction (the labels' prior), and the training
images on which the decoder's probability is flat (max - min < ``FLAT``) are counted.

``colour_mix``: each training image is seen as ``x'_c = sum_k W_ck x_k`` with a fresh random
``W`` per image and step whose rows are Dirichlet(1) draws (:func:`mix_colours`): a hue that follows
the label (a colour shortcut) cannot become "background" in the decoder when the seeds of one
class fail, while brightness and shape stay. Masks are drawn from the images as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lookright.errors import MaskError


FLAT = 0.05


class DecoderSettings(BaseModel):
    """The decoder stage of the VLM teacher (``target.vlm.decoder``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    width: int = Field(16, ge=1)
    dilations: list[int] = Field(default_factory=lambda: [1, 2, 4, 1], min_length=1,
                                 description="one 3 x 3 convolution per entry, with that dilation; the receptive "
                                 "field is 1 + 2 * sum(dilations) pixels")
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(3e-3, gt=0)
    max_images: int | None = Field(10000, ge=1, description="training images the decoder is fitted on")
    band: float = Field(0.1, ge=0, lt=0.5, description="seed values within +-band of the threshold are ignored")
    labels: Literal["seed", "crf"] = Field("seed", description="pseudo-labels from the seeds, or from the seeds "
                                           "refined by the CRF stage (target.vlm.crf)")
    filter_labels: bool = Field(False, description="pass the pseudo-labels through the teacher's component filter "
                                "(target.vlm.components, boundary_sigma) first: what it drops is labelled background")
    drop_border: bool = Field(False, description="leave out of the labels the training images whose seed mask "
                              "(after filter_labels) lies only along the image border (every component's boundary "
                              "weight below 1/2, with target.vlm.boundary_sigma): the seed lit the background")
    colour_mix: bool = Field(False, description="train on random colour remappings of the images (each channel a "
                             "random convex combination of the channels), so that no colour can mean figure or "
                             "background")
    seed: int = 0


class MaskDecoder(nn.Module):
    """``(B, C, H, W)`` images in ``[0, 1]`` -> ``(B, H, W)`` foreground logits."""

    def __init__(self, channels: int, width: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 1)) -> None:
        super().__init__()
        self.dilations = tuple(int(d) for d in dilations)
        if any(d < 1 for d in self.dilations):
            raise ValueError(f"decoder dilations must be >= 1, got {list(self.dilations)}")
        layers, c = [], channels
        for dilation in self.dilations:
            layers += [nn.Conv2d(c, width, 3, padding=dilation, dilation=dilation), nn.GroupNorm(1, width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.logit = nn.Conv2d(width, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit(self.body(images))[:, 0]


def pseudo_labels(soft: torch.Tensor, threshold: torch.Tensor, band: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, weights)`` by the rule in the module docstring, both ``(B, H, W)`` floats."""
    t = threshold.view(-1, 1, 1)
    labels = (soft >= t).float()
    weights = ((soft >= t + band) | (soft < t - band)).float()
    has_seed = (soft >= t).flatten(1).any(dim=1) & (soft.flatten(1).amax(dim=1) > 0)
    return labels, weights * has_seed.float().view(-1, 1, 1)


def fit_decoder(images: torch.Tensor, seeds, settings: DecoderSettings, progress=None) -> tuple[MaskDecoder, dict]:
    """Fit a :class:`MaskDecoder` on uint8 images ``(N, C, H, W)``; ``seeds(index)`` returns the
    ``(soft, threshold)`` of ``images[index]``, or ``(soft, threshold, border_only)`` with a ``(B,)`` bool of
    images to leave out of the labels (``drop_border``; when that would leave no label at all, none is left
    out and the record says so). Returns the decoder (eval mode) and a record (losses, constant
    baseline, ``converged``, counts of empty and full masks on the training images)."""
    s = settings
    n = len(images) if s.max_images is None else min(s.max_images, len(images))
    gen = torch.Generator().manual_seed(s.seed)
    pick = torch.randperm(len(images), generator=gen)[:n]
    x = images[pick].float() / 255
    labels, weights, border = [], [], []
    for start in range(0, n, 256):
        soft, threshold, *left_out = seeds(pick[start:start + 256])
        lab, w = pseudo_labels(soft.cpu(), threshold.cpu(), s.band)
        labels.append(lab)
        weights.append(w)
        border += [flags.cpu() for flags in left_out]
    labels, weights = torch.cat(labels), torch.cat(weights)
    extra = {}
    if border:
        border = torch.cat(border)
        kept = weights * (~border).float().view(-1, 1, 1)
        extra = {"border_only": int(border.sum()), "border_only_kept": bool(kept.sum() == 0 and weights.sum() > 0)}
        weights = weights if extra["border_only_kept"] else kept
    labelled = float(weights.sum())
    if labelled == 0:
        raise MaskError(f"the decoder has no pseudo-label to learn from: all {n} training images got an empty seed "
                        "mask; check the prompts (target.vlm.foreground, background) and the CLIP")
    prior = float((labels * weights).sum()) / labelled
    constant = -(prior * math.log(max(prior, 1e-12)) + (1 - prior) * math.log(max(1 - prior, 1e-12)))
    torch.manual_seed(s.seed)
    decoder = MaskDecoder(x.shape[1], s.width, tuple(s.dilations))
    opt = torch.optim.AdamW(decoder.parameters(), lr=s.lr, weight_decay=1e-4)
    history = []
    mix = torch.Generator().manual_seed(s.seed + 1) if s.colour_mix else None
    decoder.train()
    with torch.enable_grad():  # also when called under no_grad (mask-quality evaluation)
        for _epoch in range(s.epochs):
            history.append(_epoch_loss(decoder, opt, x, labels, weights, torch.randperm(n, generator=gen),
                                       s.batch_size, progress, mix))
    decoder.eval()
    with torch.no_grad():
        prob = torch.cat([torch.sigmoid(decoder(x[i:i + 512])) for i in range(0, n, 512)]).flatten(1)
    spread = prob.amax(dim=1) - prob.amin(dim=1)
    record = {"images": n, "labelled_pixels": labelled, "prior": prior, "constant_loss": constant, "losses": history,
              "converged": history[-1] < 0.8 * constant, "flat": int((spread < FLAT).sum()), **extra}
    return decoder, record


def mix_colours(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``(B, C, H, W)`` -> each image's channels replaced by random convex combinations of them
    (rows of ``W`` ~ Dirichlet(1): normalised Exp(1) draws); one channel: unchanged."""
    if x.shape[1] == 1:
        return x
    w = -torch.rand(x.shape[0], x.shape[1], x.shape[1], generator=generator).clamp_min(1e-12).log()
    return torch.einsum("bck,bkhw->bchw", w / w.sum(dim=2, keepdim=True), x)


def _epoch_loss(decoder, opt, x, labels, weights, order, batch_size: int, progress,
                mix: torch.Generator | None = None) -> float:
    """One pass in ``order`` (colours remapped with ``mix`` when given); returns the epoch's mean loss per
    labelled pixel."""
    total, seen = 0.0, 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        w = weights[idx]
        if w.sum() == 0:
            continue
        images = x[idx] if mix is None else mix_colours(x[idx], mix)
        loss = (F.binary_cross_entropy_with_logits(decoder(images), labels[idx], reduction="none") * w).sum() / w.sum()
        if not torch.isfinite(loss):
            raise MaskError("the decoder's loss is NaN or Inf: lower target.vlm.decoder.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * float(w.sum())
        seen += float(w.sum())
        if progress is not None:
            progress(len(idx))
    return total / max(seen, 1.0)


def decoder_problems(record: dict) -> list[str]:
    """Sentences naming what went wrong in a :func:`fit_decoder` record (empty when nothing did)."""
    problems = []
    if not record["converged"]:
        problems.append(f"the decoder did not converge: its final loss {record['losses'][-1]:.3f} is not below 0.8 x "
                        f"the loss of a constant prediction ({record['constant_loss']:.3f}); raise "
                        "target.vlm.decoder.epochs or lr, or check the seeds")
    if record["flat"] * 2 > record["images"]:
        problems.append(f"the decoder's probability is flat (spread < {FLAT}) on {record['flat']} of its "
                        f"{record['images']} training images: it finds no figure there")
    if record.get("border_only", 0) * 2 > record["images"] or record.get("border_only_kept"):
        fate = ("drop_border left them in: no label would be left otherwise" if record.get("border_only_kept")
                else "left out of its labels")
        problems.append(f"the seed masks lie only along the image border on {record['border_only']} of the decoder's "
                        f"{record['images']} training images ({fate}): the prompts light the background; check "
                        "target.vlm.foreground and background")
    return problems


def state(decoder: MaskDecoder) -> dict:
    return {"channels": decoder.body[0].in_channels, "width": decoder.logit.in_channels,
            "dilations": list(decoder.dilations), "weights": {k: v.cpu() for k, v in decoder.state_dict().items()}}


def from_state(saved: dict) -> MaskDecoder:
    decoder = MaskDecoder(saved["channels"], saved["width"], tuple(saved.get("dilations", (1, 2, 4, 1))))
    decoder.load_state_dict(saved["weights"])
    return decoder.eval()


