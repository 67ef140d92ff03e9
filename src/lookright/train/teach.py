"""``lookright teach``: precompute a run config's pseudo-masks, and measure their quality.

:func:`teach` fills the mask cache for the train, validation and test splits exactly as
training will read them (same splits, same cache keys), so a later ``lookright train`` hits
the cache. :func:`evaluate_teacher` compares each method's pseudo-masks with the ground-truth
masks of the (shifted) test split:

* ``iou``: ``|P & M| / |P | M|`` of the binary pseudo-mask ``P`` and the mask ``M``;
* ``energy_pointing_game``: share of the teacher's final soft map (the seed's upsampled,
  min-max normalised map, or the decoder's / CRF's foreground probability) inside ``M``;
* ``shortcut_energy``: share of that map on the shortcut region (the decoy patch; for
  ColorMNIST the shortcut lives on the digit itself, so this equals the energy on ``M``);
* ``empty``: share of images whose pseudo-mask is empty (skipped by the alignment losses);
* ``images_per_second``: masks drawn per second (the decoder's fit on the train split is timed
  apart, ``decoder_fit_seconds``).

The decoder stage is fitted on the train split's images and labels only; the test split's masks
are read for the scores alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from lookright.errors import ConfigError
from lookright.metrics.localisation import energy_pointing_game
from lookright.runs.progress import progress_bar
from lookright.runs.provenance import set_threads
from lookright.train.config import RunConfig
from lookright.train.trainer import load_splits
from lookright.atomic import write_json_atomic
from lookright.vlm.figures import teacher_figure
from lookright.vlm.teacher import VLMTeacher, split_masks


def _splits(cfg: RunConfig) -> tuple[RunConfig, dict]:
    """The config with its prompts resolved for the data, and the splits by name (``train.threads``
    applies to the teacher too)."""
    set_threads(cfg.train.threads)
    train, val, test, source = load_splits(cfg)
    return cfg.for_dataset(source), {"train": train, "val": val, "test": test}


def _require_vlm(cfg: RunConfig) -> None:
    if cfg.target.teacher != "vlm" or cfg.target.vlm is None:
        raise ConfigError("this config's target.teacher is not 'vlm'; set target.teacher: vlm and target.vlm")


def teach(cfg: RunConfig, progress: bool = True) -> dict:
    """Fill the cache for every split; ``{split: {"status", "images", "seconds", "empty"}}``."""
    _require_vlm(cfg)
    if cfg.target.vlm.cache_dir is None:
        raise ConfigError("target.vlm.cache_dir is null: there is no cache to fill")
    cfg, splits = _splits(cfg)
    v = cfg.target.vlm
    clip = v.clip_loader()  # loaded by the first split that misses the cache
    out = {}
    with progress_bar(progress) as bar:
        for name, split in splits.items():
            task = bar.add_task(f"pseudo-masks ({v.method}) {name}", total=len(split))
            start = time.perf_counter()
            masks, status = split_masks(VLMTeacher(v, split.y, clip=clip), split.x,
                                        {"benchmark": cfg.data.name, "seed": cfg.seed, "split": name},
                                        progress=lambda k, t=task: bar.advance(t, k))
            out[name] = {"status": status, "images": len(split), "seconds": time.perf_counter() - start,
                         "empty": float((masks.reshape(len(masks), -1).sum(axis=1) == 0).mean())}
    return out


@torch.no_grad()
def evaluate_teacher(cfg: RunConfig, methods: list[str], max_images: int = 2000, out_dir: Path | None = None,
                     figure_images: int = 6, progress: bool = True) -> dict:
    """Pseudo-mask quality of each method on the first ``max_images`` shifted-test images."""
    _require_vlm(cfg)
    cfg, splits = _splits(cfg)
    test = splits["test"]
    n = min(max_images, len(test))
    v = cfg.target.vlm
    clip = v.load_clip()
    images = torch.from_numpy(test.x[:n])
    gt = torch.from_numpy(test.mask[:n]).float()
    shortcut = torch.from_numpy(test.shortcut[:n]).float()
    results, examples = {}, {}
    with progress_bar(progress) as bar:
        for method in methods:
            teacher = VLMTeacher(v.model_copy(update={"method": method}), test.y[:n], clip=clip)
            fit = {}
            if v.decoder.enabled:
                train = splits["train"]
                task = bar.add_task(f"decoder fit: {method}", total=v.decoder.epochs * min(
                    len(train), v.decoder.max_images or len(train)))
                start = time.perf_counter()
                record = teacher.fit_decoder(train.x, train.y, progress=lambda k, t=task: bar.advance(t, k))
                fit = {"decoder_fit_seconds": time.perf_counter() - start, "decoder": record}
            task = bar.add_task(f"mask quality: {method}", total=n)
            sums = {"iou": [], "energy_pointing_game": [], "shortcut_energy": [], "empty": []}
            start = time.perf_counter()
            for s in range(0, n, v.batch_size):
                idx = torch.arange(s, min(s + v.batch_size, n))
                x = images[idx]
                soft, masks = (t.cpu() for t in teacher.soft_and_masks(x, idx))
                m = gt[idx]
                inter = (masks * m).flatten(1).sum(1)
                union = ((masks + m) > 0).float().flatten(1).sum(1)
                sums["iou"].append(inter / union.clamp_min(1))
                epg, ok = energy_pointing_game(soft, m)
                sums["energy_pointing_game"].append(epg[ok])
                sc, ok2 = energy_pointing_game(soft, shortcut[idx])
                sums["shortcut_energy"].append(sc[ok2])
                sums["empty"].append((masks.flatten(1).sum(1) == 0).float())
                if s == 0:
                    examples[method] = {"raw": soft[:figure_images].numpy(), "mask": masks[:figure_images].numpy()}
                bar.advance(task, len(idx))
            seconds = time.perf_counter() - start
            results[method] = {k: float(torch.cat(v_).mean()) for k, v_ in sums.items()}
            results[method]["images_per_second"] = n / seconds
            results[method].update(fit)
    report = {"benchmark": cfg.data.name, "images": n, "split": "test (shifted)", "teacher": v.model_dump(mode="json"),
              "methods": results}
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json_atomic(out_dir / "mask_quality.json", report)
        title = f"{cfg.data.name}: pseudo-masks from {Path(v.path or v.model_name or '').name}"
        teacher_figure(test.x[:figure_images], test.mask[:figure_images], examples, out_dir / "pseudo_masks.png", title)
    return report


__all__ = ["evaluate_teacher", "teach"]
