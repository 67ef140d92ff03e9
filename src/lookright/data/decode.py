"""Decode records with Pillow into uint8 arrays of one size, checking every file first.

Images of any size and mode become grey (``L``) or RGB (RGBA, palette, CMYK are converted) and
are resized bilinearly to ``size x size``; masks are binarised (a pixel belongs to the region
when it is >= 128, or 1 in a 0/1 mask) and resized with nearest neighbour. A mask of another
size than its image is accepted when the aspect ratio matches (within 1%).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lookright.data.records import Problems, Record

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def decode_records(records: list[Record], size: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x (N, C, size, size), mask (N, size, size), shortcut (N, size, size))`` uint8; C is 3 if
    any image is colour, else 1. One DataError lists every missing or unreadable file first."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(lambda r: decode_record(r, size), records))
    problems = Problems(what)
    for _, _, _, found in decoded:
        for message in found:
            problems.add(message)
    problems.raise_if_any("fix or remove the files named above; nothing was trained")
    channels = 3 if any(img.shape[-1] == 3 for img, _, _, _ in decoded) else 1
    x = np.stack([np.broadcast_to(img, (size, size, channels)) for img, _, _, _ in decoded])
    mask = np.stack([m for _, m, _, _ in decoded])
    shortcut = np.stack([s for _, _, s, _ in decoded])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), mask, shortcut


def decode_record(r: Record, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One record: ``(image (size, size, 1 or 3), mask, shortcut, problems)``."""
    found: list[str] = []
    zeros = np.zeros((size, size), np.uint8)
    try:
        with Image.open(r.image) as im:
            im.load()
            wh = im.size
            im = im.convert("L" if im.mode in GREY_MODES else "RGB")
            img = np.asarray(im.resize((size, size), Image.BILINEAR), np.uint8).reshape(size, size, -1)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        found.append(_unreadable("image", r, exc))
        return np.zeros((size, size, 1), np.uint8), zeros, zeros, found
    if r.mask is not None:
        mask = _read_mask(r.mask, "mask", r, wh, size, found)
    elif r.box is not None:
        mask = box_mask(r.box, wh, size)
        if mask is None:
            found.append(f"{r.where}: box {' '.join(f'{v:g}' for v in r.box)} lies outside the image "
                         f"{r.image.name} ({wh[0]}x{wh[1]} px); give it in the image's pixels")
            mask = zeros
    else:
        mask = zeros
    shortcut = zeros if r.shortcut is None else _read_mask(r.shortcut, "shortcut", r, wh, size, found)
    return img, mask, shortcut, found


def _unreadable(kind: str, r: Record, exc: Exception) -> str:
    path = r.image if kind == "image" else getattr(r, kind)
    at = f" ({r.where})" if r.where != str(path) else ""
    if isinstance(exc, FileNotFoundError):
        return f"missing {kind} {path}{at}"
    return f"unreadable {kind} {path}{at}: {exc}"


def _read_mask(path: Path, kind: str, r: Record, image_wh: tuple[int, int], size: int, found: list[str]) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            grey = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        found.append(_unreadable(kind, r, exc))
        return np.zeros((size, size), np.uint8)
    (w, h), (iw, ih) = grey.shape[::-1], image_wh
    if (w, h) != (iw, ih) and abs(w * ih - h * iw) > 0.01 * w * ih:
        found.append(f"{kind} {path} is {w}x{h} px but its image {r.image.name} is {iw}x{ih} px (another aspect "
                     f"ratio); save the {kind} at the image's size")
        return np.zeros((size, size), np.uint8)
    binary = grey > 0 if grey.max(initial=0) <= 1 else grey >= 128
    resized = Image.fromarray(binary.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return (np.asarray(resized) >= 128).astype(np.uint8)


def box_mask(box: tuple[float, float, float, float], image_wh: tuple[int, int], size: int) -> np.ndarray | None:
    """The box ``x0 y0 x1 y1`` (image pixels) rasterised at ``size x size``; None if it leaves the image."""
    (x0, y0, x1, y1), (w, h) = box, image_wh
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return None
    mask = np.zeros((size, size), np.uint8)
    sx, sy = size / w, size / h
    r0, r1 = int(np.floor(y0 * sy)), max(int(np.ceil(y1 * sy)), int(np.floor(y0 * sy)) + 1)
    c0, c1 = int(np.floor(x0 * sx)), max(int(np.ceil(x1 * sx)), int(np.floor(x0 * sx)) + 1)
    mask[r0:r1, c0:c1] = 1
    return mask
