"""Tuning a CLIP and its attribute head: frozen (head only), LoRA (``peft``) or full fine-tuning.

One loop, read top to bottom. Each step on a batch of training images ``i`` with true captions
``c_i``:

* image and text embeddings ``v_i, t_i`` (the CLIP under ``no_grad`` when frozen);
* conflicting captions: each epoch draws one per swap strategy and image; with
  ``hard_negatives`` the one the current model scores highest (``cos(v_i, .)``) is kept, else one
  at random;
* InfoNCE (LoRA / full only, weight ``contrastive_weight``): image-to-text over the batch's true
  captions plus, with ``hard_negatives``, every image's mined caption as extra negatives; text-to-image
  over the batch images. Images with the same evaluated attributes count as positives of each
  other (uniform target over them);
* head cross-entropy on ``[v, t', v * t']`` for every evaluated attribute, where ``t'`` is the
  conflicting caption's embedding for a random share ``p`` of the batch and ``t_i`` otherwise;
  labels are always the image's. ``p = conflict_share``, or with ``curriculum`` a linear ramp
  from 0 to ``conflict_share`` over the first ``curriculum_epochs`` of training;
* label smoothing on both cross-entropies; AdamW with one parameter group per transformer block
  (``lr * layerwise_lr_decay^(L-1-l)``, embeddings ``decay^L``, the head ``head_lr``); cosine
  annealing with warm restarts every ``restart_epochs`` epochs (per step) or a constant rate;
  attribute-preserving augmentation (per-image shifts of up to 1/28 of the side that never
  cross a grid cell, brightness x U(0.8, 1.2), Gaussian noise of std 0.02; no flips, which
  would change the position).
"""

from __future__ import annotations

import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.runs.progress import progress_bar
from lookright.vlm.backends import ClipBundle
from lookright.vlm.reliability.config import ReliabilityConfig, TuneConfig
from lookright.vlm.reliability.conflicts import SWAPPED, conflicting_caption
from lookright.vlm.reliability.encoder import ClipEncoder
from lookright.vlm.reliability.head import AttributeHead
from lookright.vlm.reliability.pairs import ReliabilitySet


@dataclass
class Tuned:
    clip: ClipBundle
    head: AttributeHead
    peft_model: object | None = None
    history: list[dict] = field(default_factory=list)
    trainable: dict = field(default_factory=dict)


def attach_lora(clip: ClipBundle, tune: TuneConfig):
    """Wrap the CLIP's attention projections (both towers) with LoRA adapters, in place."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("LoRA tuning needs `pip install peft`") from None
    names = {n.rsplit(".", 1)[-1] for n, _ in clip.model.named_modules()}
    missing = [t for t in tune.targets if t not in names]
    if missing:
        raise ConfigError(f"LoRA targets {missing} are not modules of this CLIP; e.g. q_proj, k_proj, v_proj, out_proj")
    config = LoraConfig(r=tune.rank, lora_alpha=tune.alpha, lora_dropout=tune.dropout, target_modules=list(tune.targets))
    with quiet_peft():
        return get_peft_model(clip.model, config)  # injects into clip.model; the bundle keeps working


@contextmanager
def quiet_peft():
    """Silence transformers' deprecation notice about gradient checkpointing, which peft triggers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def block_index(name: str) -> int | None:
    m = re.search(r"layers\.(\d+)\.|resblocks\.(\d+)\.", name)
    return None if m is None else int(m.group(1) or m.group(2))


def parameter_groups(model: torch.nn.Module, lr: float, decay: float) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay: block ``l`` of ``L`` gets
    ``lr * decay^(L-1-l)``; embeddings (``embed`` in the name) ``lr * decay^L``; the rest ``lr``."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depth = 1 + max((block_index(n) or 0) for n, _ in params) if params else 1
    groups: dict[float, list] = {}
    for n, p in params:
        l = block_index(n)
        scale = decay ** (depth - 1 - l) if l is not None else (decay ** depth if "embed" in n else 1.0)
        groups.setdefault(lr * scale, []).append(p)
    return [{"params": ps, "lr": g} for g, ps in sorted(groups.items())]


def augment(pixels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image shift by up to ``max(1, S // 28)`` pixels (zero fill), brightness x U(0.8, 1.2), noise 0.02."""
    b, _, s, _ = pixels.shape
    k = max(1, s // 28)
    shifts = torch.randint(-k, k + 1, (b, 2), generator=gen)
    out = torch.zeros_like(pixels)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        ys, yd = (slice(0, s - dy), slice(dy, s)) if dy >= 0 else (slice(-dy, s), slice(0, s + dy))
        xs, xd = (slice(0, s - dx), slice(dx, s)) if dx >= 0 else (slice(-dx, s), slice(0, s + dx))
        out[i, :, yd, xd] = pixels[i, :, ys, xs]
    gain = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=gen)
    noise = 0.02 * torch.randn(pixels.shape, generator=gen)
    return (out * gain.to(out.device) + noise.to(out.device)).clamp(0, 1)


def conflict_share(tune: TuneConfig, progress: float) -> float:
    if not tune.curriculum:
        return tune.conflict_share
    return tune.conflict_share * min(1.0, progress / tune.curriculum_epochs)


def soft_targets(groups: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``(B, B)`` matrix: 1 where two images share a group (the same evaluated attributes)."""
    same = (groups[:, None] == groups[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def tune(clip: ClipBundle, train: ReliabilitySet, cfg: ReliabilityConfig, progress: bool = True) -> Tuned:
    t = cfg.tune
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = clip.device
    encoder = ClipEncoder(clip)
    dim = encoder.text(train.captions[:1]).shape[-1]
    head = AttributeHead(dim, {a: len(train.vocabulary(a)) for a in train.attributes}, cfg.head.hidden).to(device)
    peft_model = None
    for p in clip.model.parameters():
        p.requires_grad_(t.method == "full")
    if t.method == "lora":
        peft_model = attach_lora(clip, t)
    groups = [] if t.method == "frozen" else parameter_groups(clip.model, t.lr, t.layerwise_lr_decay)
    opt = torch.optim.AdamW(groups + [{"params": head.parameters(), "lr": t.head_lr}], weight_decay=t.weight_decay)
    steps_per_epoch = max(1, len(train) // t.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t.restart_epochs * steps_per_epoch,
                                                                  eta_min=0.01 * t.lr)
             if t.cosine_restarts else None)
    trainable = {"clip": sum(p.numel() for p in clip.model.parameters() if p.requires_grad),
                 "head": sum(p.numel() for p in head.parameters()),
                 "clip_total": sum(p.numel() for p in clip.model.parameters())}
    swaps = [s for s, a in SWAPPED.items() if a in train.attributes]
    ids: dict[tuple, int] = {}  # one id per combination of the evaluated attributes
    groups = torch.tensor([ids.setdefault(tuple(a[k] for k in train.attributes), len(ids))
                           for a in train.data.attributes], device=device)
    labels = {a: train.labels[a].to(device) for a in train.attributes}
    pixels = train.pixels.to(device)
    history = []
    total = t.epochs * steps_per_epoch
    clip.model.train(t.method != "frozen")
    with progress_bar(progress) as bar:
        task = bar.add_task(f"tuning ({t.method}) {cfg.name} seed {cfg.seed}", total=total)
        for epoch in range(t.epochs):
            start = time.perf_counter()
            conflicts = [[conflicting_caption(s, c, a, train.data.config, rng).caption for s in swaps]
                         for c, a in zip(train.captions, train.data.attributes)]
            order = torch.randperm(len(train), generator=gen)
            sums = {"loss": 0.0, "head": 0.0, "contrastive": 0.0, "share": 0.0}
            for step in range(steps_per_epoch):
                idx = order[step * t.batch_size:(step + 1) * t.batch_size]
                rows = idx.tolist()
                share = conflict_share(t, (epoch + step / steps_per_epoch) / t.epochs)
                x = augment(pixels[idx], gen) if t.augmentation else pixels[idx]
                with torch.set_grad_enabled(t.method != "frozen"):
                    v = encoder.image(x)
                    text = encoder.text([train.captions[i] for i in rows])
                candidates = [conflicts[i] for i in rows]
                if t.hard_negatives and swaps:
                    with torch.no_grad():
                        tc = encoder.text([c for cs in candidates for c in cs]).view(len(rows), len(swaps), -1)
                        pick = torch.einsum("bd,bkd->bk", v.detach(), tc).argmax(dim=1).tolist()
                else:
                    pick = torch.randint(len(swaps), (len(rows),), generator=gen).tolist() if swaps else []
                shown = torch.rand(len(rows), generator=gen) < share if swaps else torch.zeros(len(rows), dtype=torch.bool)
                need_conflict = (t.hard_negatives and t.method != "frozen") or bool(shown.any())
                conflict_text = None
                if need_conflict:
                    with torch.set_grad_enabled(t.method != "frozen"):
                        conflict_text = encoder.text([candidates[b][pick[b]] for b in range(len(rows))])
                head_text = text if conflict_text is None else torch.where(shown[:, None].to(device), conflict_text, text)
                logits = head(v, head_text)
                head_loss = sum(F.cross_entropy(logits[a], labels[a][idx], label_smoothing=t.label_smoothing)
                                for a in train.attributes) / len(train.attributes)
                loss = head_loss
                con = torch.zeros(())
                if t.method != "frozen" and t.contrastive_weight > 0:
                    target = soft_targets(groups[idx.to(device)])
                    columns = text if not (t.hard_negatives and conflict_text is not None) else torch.cat([text, conflict_text])
                    scale = clip.logit_scale
                    i2t = scale * v @ columns.T
                    i2t_target = torch.cat([target, torch.zeros(len(rows), columns.shape[0] - len(rows), device=device)], 1)
                    con = 0.5 * (F.cross_entropy(i2t, i2t_target, label_smoothing=t.label_smoothing)
                                 + F.cross_entropy(scale * text @ v.T, target, label_smoothing=t.label_smoothing))
                    loss = loss + t.contrastive_weight * con
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                sums["loss"] += loss.item()
                sums["head"] += head_loss.item()
                sums["contrastive"] += con.item()
                sums["share"] += share
                bar.advance(task)
            history.append({"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()},
                            "lr": opt.param_groups[-1]["lr"], "seconds": time.perf_counter() - start})
    clip.model.eval()
    head.eval()
    return Tuned(clip, head, peft_model, history, trainable)
