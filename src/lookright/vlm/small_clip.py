"""A small CLIP that lookright pretrains itself, in the Hugging Face CLIP classes.

``build_small_clip`` makes a ``CLIPModel`` (ViT image tower, causal text transformer, the
usual projections and learnable temperature) sized for 2 CPU cores: by default 28 x 28 images,
4 x 4 patches (a 7 x 7 token grid), width 96, 3 layers, 4 heads in both towers, joint space 96.
``pretrain_clip`` trains it on a captioned corpus (:mod:`lookright.vlm.corpus`) with one of the
objectives of :mod:`lookright.vlm.objectives` (``cls``: CLIP's symmetric InfoNCE on the class
token; ``patch``: the same plus a patch-level multiple-instance term; ``region``: the same plus a
term on side-by-side composites whose halves are scored by their own patches), optionally with random translations of up to ``shift`` pixels (zero fill), AdamW
with linear warm-up and cosine decay, and writes a folder that
``CLIPModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` (and :func:`load_clip`) read:
model, tokenizer, image-processor config (mean and std 0.5) and ``pretrain.json`` (corpus, seed,
steps, losses, zero-shot accuracies on held-out images, wall time).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lookright.data.shapes import ShapesConfig, generate_shapes
from lookright.errors import ConfigError
from lookright.atomic import write_json_atomic
from lookright.runs.progress import progress_bar
from lookright.vlm.backends import hf_bundle
from lookright.vlm.corpus import BACKGROUND_CAPTIONS, DIGIT_NAMES, Captioned, build_corpus, mnist_captioned
from lookright.vlm.objectives import check_objective, clip_loss
from lookright.vlm.tokenizer import BOS, EOS, build_tokenizer

MEAN = STD = (0.5, 0.5, 0.5)


def build_small_clip(tokenizer, image_size: int = 28, patch_size: int = 4, width: int = 96, layers: int = 3,
                     heads: int = 4, embed_dim: int = 96, max_text: int = 32):
    from transformers import CLIPConfig, CLIPModel

    if image_size % patch_size:
        raise ConfigError(f"image_size {image_size} is not a multiple of patch_size {patch_size}: the patch grid "
                          "would not cover the image; choose a patch size that divides it")
    ids = tokenizer.convert_tokens_to_ids([BOS, EOS])
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
                         num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=max_text,
                         bos_token_id=ids[0], eos_token_id=ids[1], pad_token_id=ids[1]),
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=width,
                           intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads),
        projection_dim=embed_dim)
    return CLIPModel(config)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - 0.5) / 0.5


def random_shift(images: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image translated by integers ``(dy, dx)`` drawn uniformly from ``[-shift, shift]``, zero fill."""
    if shift <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    d = torch.randint(0, 2 * shift + 1, (b, 2), generator=gen)
    return torch.stack([padded[i, :, d[i, 0]:d[i, 0] + h, d[i, 1]:d[i, 1] + w] for i in range(b)])


@torch.no_grad()
def zero_shot(model, tokenizer, images: np.ndarray, labels: np.ndarray, prompts: list[str], batch: int = 1000) -> float:
    """Accuracy of ``argmax_k cos(image, prompt_k)`` against ``labels`` (indices into ``prompts``)."""
    model.eval()
    text = tokenizer(prompts, padding=True, return_tensors="pt")
    t = model.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
    t = F.normalize(getattr(t, "pooler_output", t), dim=-1)
    correct = 0
    for s in range(0, len(images), batch):
        v = model.get_image_features(pixel_values=_normalise(torch.as_tensor(images[s:s + batch])))
        v = F.normalize(getattr(v, "pooler_output", v), dim=-1)
        correct += int(((v @ t.T).argmax(dim=1).numpy() == labels[s:s + batch]).sum())
    return correct / len(images)


def held_out_accuracy(model, tokenizer, corpus: str, image_size: int, holdout: int, data_dir=None,
                      embedded: bool = False, n: int = 2000) -> dict:
    """Zero-shot accuracy on MNIST training digits kept out of pretraining and on fresh shapes
    (seed 10,007, never used for pretraining), for the parts the corpus has."""
    out, chance = {}, {}
    if "mnist" in corpus:
        digits = mnist_captioned(None, image_size, 0, holdout, data_dir, embedded, held_out=True)
        out["mnist_digit"] = zero_shot(model, tokenizer, digits.images[:n], digits.labels[:n],
                                       [f"a handwritten digit {d}" for d in DIGIT_NAMES])
        chance["mnist_digit"] = 0.1
    if "shapes" in corpus:
        shapes = generate_shapes(n, seed=10_007, config=ShapesConfig(image_size=image_size))
        for attr in ("shape", "color", "position"):
            vocab = shapes.config.vocabulary(attr)
            prompts = {"shape": "a photo of a {}", "color": "a {} shape", "position": "a shape in the {}"}[attr]
            out[f"shapes_{attr}"] = zero_shot(model, tokenizer, shapes.images, shapes.labels(attr),
                                              [prompts.format(v) for v in vocab])
            chance[f"shapes_{attr}"] = 1 / len(vocab)
    out["chance"] = chance
    return out


def pretrain_clip(out: str | Path, corpus: str = "mnist-shapes", epochs: int = 8, batch_size: int = 256,
                  lr: float = 1e-3, weight_decay: float = 0.1, image_size: int = 28, seed: int = 0,
                  n_mnist: int | None = 20000, n_shapes: int = 10000, holdout: int = 5000, data_dir=None,
                  embedded: bool = False, progress: bool = True, objective: str = "region", patch_weight: float = 1.0,
                  patch_tau: float = 0.1, shift: int = 0, p_empty: float = 0.25, tint: float = 0.0,
                  **size) -> dict:
    check_objective(objective)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data: Captioned = build_corpus(corpus, image_size, seed, n_mnist, n_shapes, holdout, data_dir, embedded,
                                   tint=tint)
    tokenizer = build_tokenizer(data.captions + [f"a handwritten digit {d}" for d in DIGIT_NAMES] + ["black dark"],
                                out / "vocab")
    model = build_small_clip(tokenizer, image_size=image_size, **size)
    clip = hf_bundle(model, tokenizer, MEAN, STD, "pretraining")
    text = tokenizer(data.captions, padding=True, return_tensors="pt")
    ids, attn = text["input_ids"], text["attention_mask"]
    images = torch.as_tensor(data.images)
    empty = torch.tensor([src == "empty" for src in data.source])
    bg_text = tokenizer(list(BACKGROUND_CAPTIONS), padding=True, return_tensors="pt")
    background = {k: bg_text[k] for k in ("input_ids", "attention_mask")}
    n = len(data)
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    gen = torch.Generator().manual_seed(seed)
    history, start = [], time.perf_counter()
    model.train()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"pretraining CLIP on {corpus} ({objective})", total=total)
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            losses, parts = [], []
            for s in range(steps_per_epoch):
                idx = order[s * batch_size:(s + 1) * batch_size]
                length = int(attn[idx].sum(dim=1).max())
                pixels = _normalise(random_shift(images[idx], shift, gen))
                loss, part = clip_loss(objective, clip, pixels, {"input_ids": ids[idx, :length],
                                                                 "attention_mask": attn[idx, :length]},
                                       patch_weight, patch_tau, background, empty[idx], p_empty)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                losses.append(loss.item())
                parts.append(part)
                bar.advance(task)
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                            **{k: float(np.mean([p[k] for p in parts])) for k in parts[0]}})
    wall = time.perf_counter() - start
    model.eval()
    accuracy = held_out_accuracy(model, tokenizer, corpus, image_size, holdout, data_dir, embedded)
    save_clip(model, tokenizer, out, image_size)
    record = {"corpus": corpus, "images": n, "seed": seed, "epochs": epochs, "steps": total, "batch_size": batch_size,
              "lr": lr, "image_size": image_size, "size": size, "objective": objective, "patch_weight": patch_weight,
              "patch_tau": patch_tau, "shift": shift, "p_empty": p_empty, "tint": tint, "history": history, "zero_shot": accuracy,
              "wall_time_s": wall, "holdout": holdout,
              "note": "MNIST training split only (last `holdout` digits held out); colours (tint) drawn independently "
                      "of the label; no decoy, no test split"}
    write_json_atomic(out / "pretrain.json", record)
    return record


def save_clip(model, tokenizer, out: Path, image_size: int) -> None:
    from transformers import CLIPImageProcessor

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                       image_mean=list(MEAN), image_std=list(STD)).save_pretrained(out)
