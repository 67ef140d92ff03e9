"""``lookright teach``: precompute a run config's pseudo-masks, and measure their quality.

:func:`teach` fills the mask cache for the train, validation and test splits exactly as
training will read them (same splits, same cache keys), so a later ``lookright train`` hits
the cache. :func:`evaluate_teacher` compares each method's pseudo-masks with the ground-truth
masks of the (shifted) test split:

* ``iou``: ``|P & M| / |P | M|`` of the binary pseudo-mask ``P`` and the mask ``M``;
* ``energy_pointing_game``: share of the (upsampled, ReLU) raw map inside ``M``;
* ``shortcut_energy``: share of the raw map on the shortcut region (the decoy patch; for
  ColorMNIST the shortcut lives on the digit itself, so this equals the energy on ``M``);
* ``empty``: share of images whose pseudo-mask is empty (skipped by the alignment losses).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lookright.errors import ConfigError
from lookright.metrics.localisation import energy_pointing_game
from lookright.runs.progress import progress_bar
from lookright.train.config import RunConfig
from lookright.train.trainer import load_splits
from lookright.atomic import write_json_atomic
from lookright.vlm.figures import teacher_figure
from lookright.vlm.teacher import VLMTeacher, split_masks


def _splits(cfg: RunConfig) -> tuple[RunConfig, dict]:
    """The config with its prompts resolved for the data, and the splits by name."""
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
    clip = v.load_clip()
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
            task = bar.add_task(f"mask quality: {method}", total=n)
            sums = {"iou": [], "energy_pointing_game": [], "shortcut_energy": [], "empty": []}
            start = time.perf_counter()
            for s in range(0, n, v.batch_size):
                idx = torch.arange(s, min(s + v.batch_size, n))
                x = images[idx]
                raw = teacher.raw_maps(x, teacher.labels[idx])
                masks = teacher(x, idx).cpu()
                up = F.interpolate(raw[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0].cpu()
                m = gt[idx]
                inter = (masks * m).flatten(1).sum(1)
                union = ((masks + m) > 0).float().flatten(1).sum(1)
                sums["iou"].append(inter / union.clamp_min(1))
                epg, ok = energy_pointing_game(up, m)
                sums["energy_pointing_game"].append(epg[ok])
                sc, ok2 = energy_pointing_game(up, shortcut[idx])
                sums["shortcut_energy"].append(sc[ok2])
                sums["empty"].append((masks.flatten(1).sum(1) == 0).float())
                if s == 0:
                    examples[method] = {"raw": up[:figure_images].numpy(), "mask": masks[:figure_images].numpy()}
                bar.advance(task, len(idx))
            seconds = time.perf_counter() - start
            results[method] = {k: float(torch.cat(v_).mean()) for k, v_ in sums.items()}
            results[method]["images_per_second"] = n / seconds
    report = {"benchmark": cfg.data.name, "images": n, "split": "test (shifted)", "teacher": v.model_dump(mode="json"),
              "methods": results}
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json_atomic(out_dir / "mask_quality.json", report)
        title = f"{cfg.data.name}: pseudo-masks from {Path(v.path or v.model_name or '').name}"
        teacher_figure(test.x[:figure_images], test.mask[:figure_images], examples, out_dir / "pseudo_masks.png", title)
    return report


__all__ = ["evaluate_teacher", "teach"]
