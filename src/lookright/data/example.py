"""A generated example dataset in the manifest format, with a known spatial shortcut.

Coloured shapes (circle, square, triangle, cross) on a noisy background; the shape's colour is
random, so only its outline tells the class. A small patch in the top-left corner carries the
shortcut: its colour codes the class in train and val, and is random in test. Masks mark the
shape, shortcut masks the patch. Splits: 70% train, 10% val, 20% test.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lookright.atomic import write_file_atomic, write_text_atomic
from lookright.errors import DataError

CLASSES = ("circle", "square", "triangle", "cross")
PATCH_COLOURS = ((230, 40, 40), (40, 200, 40), (40, 80, 240), (240, 220, 30))


def write_example(out: str | Path, n: int = 600, size: int = 96, seed: int = 0, force: bool = False) -> Path:
    """Write ``OUT/images``, ``OUT/masks``, ``OUT/shortcuts`` (PNG) and ``OUT/manifest.csv``; return the CSV."""
    out = Path(out)
    manifest = out / "manifest.csv"
    if manifest.exists() and not force:
        raise DataError(f"{manifest} exists; nothing is overwritten: choose another --out or pass --force")
    if size < 32 or n < 10:
        raise DataError(f"--size must be >= 32 and --n >= 10 (got size {size}, n {n})")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        split = "train" if i % 10 < 7 else "val" if i % 10 == 7 else "test"
        label = int(rng.integers(len(CLASSES)))
        patch = label if split != "test" else int(rng.integers(len(CLASSES)))
        image, mask, shortcut = draw_example(label, patch, size, rng)
        stem = f"{i:05d}"
        for folder, picture in (("images", image), ("masks", mask), ("shortcuts", shortcut)):
            _save_png(out / folder / f"{stem}.png", picture)
        rows.append([f"images/{stem}.png", CLASSES[label], split, f"masks/{stem}.png", f"shortcuts/{stem}.png"])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["image", "label", "split", "mask", "shortcut"], *rows])
    return write_text_atomic(manifest, text.getvalue())


def draw_example(label: int, patch: int, size: int, rng: np.random.Generator) -> tuple[Image.Image, ...]:
    """One RGB image with shape ``label`` and corner patch colour ``patch``; its shape and patch masks."""
    noise = rng.normal(110, 25, (size, size, 3)) + rng.integers(-30, 31, 3)
    image = Image.fromarray(noise.clip(0, 255).astype(np.uint8))
    mask, shortcut = Image.new("L", (size, size)), Image.new("L", (size, size))
    p = max(4, size // 8)  # the patch, in the top-left corner; the shape keeps clear of it
    radius = int(rng.integers(size // 6, size // 4 + 1))
    cx = int(rng.integers(p + 2 + radius, size - radius - 1))
    cy = int(rng.integers(p + 2 + radius, size - radius - 1))
    colour = tuple(int(v) for v in rng.integers(60, 256, 3))
    for canvas, fill in ((ImageDraw.Draw(image), colour), (ImageDraw.Draw(mask), 255)):
        _shape(canvas, CLASSES[label], cx, cy, radius, fill)
    ImageDraw.Draw(image).rectangle([0, 0, p - 1, p - 1], fill=PATCH_COLOURS[patch])
    ImageDraw.Draw(shortcut).rectangle([0, 0, p - 1, p - 1], fill=255)
    return image, mask, shortcut


def _shape(draw: ImageDraw.ImageDraw, name: str, cx: int, cy: int, r: int, fill) -> None:
    box = [cx - r, cy - r, cx + r, cy + r]
    if name == "circle":
        draw.ellipse(box, fill=fill)
    elif name == "square":
        draw.rectangle([cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r], fill=fill)
    elif name == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = max(2, r // 3)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)


def _save_png(path: Path, picture: Image.Image) -> None:
    try:
        write_file_atomic(path, lambda f: picture.save(f, format="PNG"))
    except OSError as exc:
        raise DataError(f"--out: cannot write {path} ({exc.strerror}); choose a writable folder") from None
