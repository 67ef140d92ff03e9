"""DecoyMNIST, both published variants (grey, one channel).

* ``decoymnist-cdep`` (CDEP): a 5x5 patch in one of the four corners, chosen uniformly; its
  grey value is ``255 - 25 y`` in train and ``25 y`` in test.
* ``decoymnist-rrr`` (Right for the Right Reasons): a 4x4 patch in a random corner; value
  ``255 - 25 y`` in train and ``255 - 25 r`` in test, ``r`` a uniformly random digit.

The patch replaces the pixels under it. The shortcut mask is the patch.
"""

from __future__ import annotations

import numpy as np

from lookright.data.benchmark import GENERATORS


def corner_region(shape: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``(N, H, W)``: a ``size x size`` square in a uniformly random corner of each image."""
    n, h, w = shape
    corner = rng.integers(0, 4, size=n)
    top = np.where(corner // 2 == 0, 0, h - size)
    left = np.where(corner % 2 == 0, 0, w - size)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    inside = (
        (rows >= top[:, None, None]) & (rows < top[:, None, None] + size)
        & (cols >= left[:, None, None]) & (cols < left[:, None, None] + size)
    )
    return inside


def paint_corner_patches(grey: np.ndarray, values: np.ndarray, size: int, rng: np.random.Generator):
    """Paint a ``size x size`` patch of ``values[i]`` into a uniformly random corner of image i."""
    inside = corner_region(grey.shape, size, rng)
    x = np.where(inside, values[:, None, None].astype(np.uint8), grey)
    return x[:, None].astype(np.uint8), inside.astype(np.uint8)


@GENERATORS.register("decoymnist-cdep")
def decoymnist_cdep(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """CDEP's DecoyMNIST: a 5x5 corner patch of grey 255 - 25y in train, 25y in test."""
    y = labels.astype(np.int64)
    values = 255 - 25 * y if rule == "train" else 25 * y
    return paint_corner_patches(grey, values, 5, rng)


@GENERATORS.register("decoymnist-rrr")
def decoymnist_rrr(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """RRR's DecoyMNIST: a 4x4 corner patch of grey 255 - 25y in train, a random digit's grey in test."""
    y = labels.astype(np.int64)
    if rule == "train":
        values = 255 - 25 * y
    else:
        values = 255 - 25 * rng.integers(0, 10, size=len(y))
    return paint_corner_patches(grey, values, 4, rng)
