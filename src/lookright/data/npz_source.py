"""An ``.npz`` as written by ``lookright data export``: ``x_SPLIT, y_SPLIT[, mask_SPLIT, shortcut_SPLIT]``.

Splits are train and test, and optionally val. Images are uint8 ``(N, C, H, W)`` (or ``(N, H, W)``
grey); they and the masks are resized to ``image_size`` when their size differs (bilinear for
images, nearest for masks). A split without ``mask_*`` / ``shortcut_*`` gets all-zero masks.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lookright.data.table import Table
from lookright.errors import DataError


def read_npz(path: str | Path, size: int) -> Table:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path: no file {path}; write one with `lookright data export NAME --out {path}`")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"data.path: {path} is not a readable .npz ({exc})") from None
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in arrays]
    missing = [k for s in ("train", "test") for k in (f"x_{s}", f"y_{s}") if k not in arrays]
    missing += [f"y_{s}" for s in splits if f"y_{s}" not in arrays and f"y_{s}" not in missing]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (found: {', '.join(sorted(arrays))}); "
                        "an .npz needs x_train, y_train, x_test, y_test and optionally *_val, mask_*, shortcut_*")
    parts = [_split(arrays, s, path, size) for s in splits]
    channels = max(p[0].shape[1] for p in parts)
    x = np.concatenate([np.broadcast_to(p[0], (len(p[0]), channels, size, size)) for p in parts])
    labels = np.concatenate([p[3] for p in parts])
    where = [f"{path.name} y_{s}[{i}]" for s, p in zip(splits, parts) for i in range(len(p[3]))]
    split = np.concatenate([np.full(len(p[3]), s) for s, p in zip(splits, parts)])
    return Table(x, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                 labels, split, where)


def _split(arrays: dict, s: str, path: Path, size: int):
    x, y = arrays[f"x_{s}"], np.asarray(arrays[f"y_{s}"]).reshape(-1)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.dtype != np.uint8 or x.shape[1] not in (1, 3) or len(x) != len(y):
        raise DataError(f"{path}: x_{s} must be uint8 (N, C, H, W) with C 1 or 3 and N = len(y_{s}) = {len(y)}, "
                        f"got {x.dtype} {x.shape}")
    masks = []
    for key in (f"mask_{s}", f"shortcut_{s}"):
        m = arrays.get(key, np.zeros((len(x), *x.shape[-2:]), np.uint8))
        if m.shape != (len(x), *x.shape[-2:]):
            raise DataError(f"{path}: {key} has shape {m.shape}, expected {(len(x), *x.shape[-2:])} like x_{s}")
        masks.append((m > 0).astype(np.uint8))
    if x.shape[-2:] != (size, size):
        x = _resize(x, size, "bilinear").round().clip(0, 255).astype(np.uint8)
        masks = [_resize(m[:, None], size, "nearest")[:, 0].astype(np.uint8) for m in masks]
    return x, masks[0], masks[1], y.astype(str)


def _resize(a: np.ndarray, size: int, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a)).float()
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, size=(size, size), mode=mode, **kw).numpy()
