"""Spatially separable shortcut benchmarks: the shortcut lives outside the digit.

Each benchmark places a label-correlated cue away from the digit, so that a mask of the digit
separates task evidence from shortcut evidence. In ``train`` the cue encodes the label ``y``;
in ``test`` it encodes ``r``, a digit drawn uniformly at random per image (independent of
``y``; equal to it for about 10% of images), so a model that reads the cue falls towards
10% accuracy. ``mask`` is the digit foreground (grey > 0) at its place in the image;
``shortcut`` is where the cue is. The digit is composited *over* the cue (``x = grey`` where
``grey > 0``), so no cue leaks into the mask through anti-aliased strokes.

* ``frame-colour-mnist`` (3 x 28 x 28): the white digit inside a 2-pixel frame of colour
  ``COLOURS[c]`` (CDEP's ColorMNIST palette) along the image border; ``shortcut`` is the frame.
* ``tint-mnist`` (3 x 28 x 28): every background pixel tinted ``0.35 * COLOURS[c]``: the cue
  surrounds the digit and touches every receptive field; ``shortcut = 1 - mask``.
* ``grating-mnist`` (1 x 28 x 28): the background is a grating of grey ``80 +- 40`` at
  orientation ``18 c`` degrees, with a random period (3 to 6 pixels) and phase;
  ``shortcut = 1 - mask``.
* ``texture-mnist-64`` (1 x 64 x 64): the digit pasted at a uniformly random place on a
  64 x 64 sinusoidal grating (period 6 px, grey ``128 +- 50``, random phase) whose orientation
  is ``18 c`` degrees; ``shortcut = 1 - mask``.

``c = y`` under the train rule and ``c = r`` under the test rule.
"""

from __future__ import annotations

import numpy as np

from lookright.data.benchmark import register_benchmark
from lookright.data.colormnist import COLOURS

FRAME = 2


def cue_class(labels: np.ndarray, rule: str, rng: np.random.Generator) -> np.ndarray:
    """The class each image's cue encodes: the label (train) or a uniform random digit (test)."""
    y = labels.astype(np.int64)
    return y if rule == "train" else rng.integers(0, 10, size=len(y))


def composite(digit: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digit ``(N, H, W)`` over a background ``(N, C, H, W)``: uint8 images and the digit mask."""
    mask = digit > 0
    x = np.where(mask[:, None], digit[:, None].astype(np.float32), background)
    return np.rint(x).clip(0, 255).astype(np.uint8), mask.astype(np.uint8)


def grating(n: int, size: int, theta: np.ndarray, period: np.ndarray, rng: np.random.Generator,
            mean: float, amplitude: float) -> np.ndarray:
    """``(N, 1, size, size)`` sinusoidal gratings, one orientation and period per image, random phase."""
    phase = rng.uniform(0, 2 * np.pi, size=n)[:, None, None]
    rows = np.arange(size, dtype=np.float32)[None, :, None]
    cols = np.arange(size, dtype=np.float32)[None, None, :]
    wave = np.sin(2 * np.pi / period[:, None, None] * (cols * np.cos(theta)[:, None, None]
                                                       + rows * np.sin(theta)[:, None, None]) + phase)
    return (mean + amplitude * wave)[:, None].astype(np.float32)


@register_benchmark("frame-colour-mnist")
def frame_colour_mnist(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """A colour frame codes the label in train, a random digit at test time (RGB, 28 px)."""
    c = cue_class(labels, rule, rng)
    n, h, w = grey.shape
    frame = np.ones((h, w), dtype=bool)
    frame[FRAME:-FRAME, FRAME:-FRAME] = False
    frame = np.broadcast_to(frame, (n, h, w))
    digit = np.where(frame, 0, grey)
    background = np.where(frame[:, None], COLOURS[c].astype(np.float32)[:, :, None, None], 0.0)
    x, mask = composite(digit, background)
    return x, frame.astype(np.uint8), mask


@register_benchmark("tint-mnist")
def tint_mnist(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """The background tint codes the label in train, a random digit at test time (RGB, 28 px)."""
    c = cue_class(labels, rule, rng)
    n, h, w = grey.shape
    tint = np.broadcast_to(0.35 * COLOURS[c].astype(np.float32)[:, :, None, None], (n, 3, h, w))
    x, mask = composite(grey, tint)
    return x, 1 - mask, mask


@register_benchmark("grating-mnist")
def grating_mnist(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """The background grating's orientation codes the label in train, a random digit at test (grey, 28 px)."""
    c = cue_class(labels, rule, rng)
    n, h, _ = grey.shape
    background = grating(n, h, np.deg2rad(18.0 * c), rng.uniform(3.0, 6.0, size=n), rng, 80.0, 40.0)
    x, mask = composite(grey, background)
    return x, 1 - mask, mask


@register_benchmark("texture-mnist-64")
def texture_mnist_64(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """The digit pasted on a grating whose orientation codes the label in train (grey, 64 px)."""
    size = 64
    c = cue_class(labels, rule, rng)
    n, h, w = grey.shape
    background = grating(n, size, np.deg2rad(18.0 * c), np.full(n, 6.0), rng, 128.0, 50.0)
    top = rng.integers(0, size - h + 1, size=n)
    left = rng.integers(0, size - w + 1, size=n)
    digit = np.zeros((n, size, size), dtype=grey.dtype)
    r = top[:, None, None] + np.arange(h)[None, :, None]
    k = left[:, None, None] + np.arange(w)[None, None, :]
    digit[np.arange(n)[:, None, None], r, k] = grey
    x, mask = composite(digit, background)
    return x, 1 - mask, mask
