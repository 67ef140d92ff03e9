"""Captioned images for pretraining a small CLIP offline.

* ``mnist``: clean MNIST digits of the **training split only** (white on black, no colour, no
  decoy), resized to the image size, captioned from :data:`DIGIT_TEMPLATES` ("a handwritten
  digit seven", ...). The last ``holdout`` training digits are kept out for zero-shot tests.
* ``shapes``: the synthetic shapes of :mod:`lookright.data.shapes` with their captions.
* ``mnist-shapes``: both, shuffled together.

``tint`` (default 0): that fraction of the MNIST digits
is drawn in a random colour (hue uniform, saturation in [0.5, 1], full value:
``x_c = grey * colour_c``) and captioned from the templates that name no colour. A general colour
augmentation: each digit's colour is drawn independently of its
label, so it carries no shortcut.

Every corpus also holds ``empty_fraction`` (default 5%) all-black images captioned from
:data:`BACKGROUND_CAPTIONS`, so that background prompts ("background", "black", "dark") mean
something to the text tower.

Nothing here reads the MNIST test split, and nothing draws a shortcut (a label-coded colour or patch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lookright.data.mnist import load_embedded, load_mnist
from lookright.data.shapes import ShapesConfig, generate_shapes
from lookright.errors import ConfigError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = (
    "a handwritten digit {name}",
    "a photo of the number {name}",
    "the digit {name}, handwritten",
    "a white handwritten {name} on black",
    "a drawing of the number {name}",
)
BACKGROUND_CAPTIONS = ("a black background", "an empty dark image", "background", "nothing but black")
CORPORA = ("mnist", "shapes", "mnist-shapes")


@dataclass
class Captioned:
    images: np.ndarray  # (N, 3, S, S) uint8
    captions: list[str]
    source: list[str]  # "mnist" or "shapes" per image
    labels: np.ndarray  # digit, or shape index; (N,)

    def __len__(self) -> int:
        return len(self.captions)


def fit_digits(images: np.ndarray, size: int) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> ``(N, 3, size, size)``, resized bilinearly as the CLIP backends
    resize any input (so pretraining and teaching see digits at the same scale)."""
    x = torch.as_tensor(images)[:, None].float()
    if size != 28:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8).expand(-1, 3, -1, -1).numpy().copy()


def random_colours(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` RGB in [0, 1]: hue uniform, saturation uniform in [0.5, 1], value 1."""
    h, s = rng.random(n), rng.uniform(0.5, 1.0, n)
    k = (np.array([5.0, 3.0, 1.0])[None] + h[:, None] * 6) % 6
    return 1 - s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def mnist_captioned(n: int | None, image_size: int, seed: int, holdout: int, data_dir=None,
                    embedded: bool = False, held_out: bool = False, tint: float = 0.0) -> Captioned:
    mnist = load_embedded() if embedded else load_mnist(data_dir)
    images, labels = mnist.train_images, mnist.train_labels
    if holdout >= len(images):
        raise ConfigError(f"holdout ({holdout}) must be smaller than the {len(images)} training digits")
    cut = len(images) - holdout
    images, labels = (images[cut:], labels[cut:]) if held_out else (images[:cut], labels[:cut])
    if n is not None:
        images, labels = images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    captions = [DIGIT_TEMPLATES[int(rng.integers(len(DIGIT_TEMPLATES)))].format(name=DIGIT_NAMES[int(y)])
                for y in labels]
    pixels = fit_digits(images, image_size)
    if tint > 0:
        tinted = np.flatnonzero(np.random.default_rng(seed + 2).random(len(labels)) < tint)
        colours = random_colours(len(tinted), np.random.default_rng(seed + 3))
        pixels[tinted] = np.round(pixels[tinted] * colours[:, :, None, None]).astype(np.uint8)
        plain = [t for t in DIGIT_TEMPLATES if "white" not in t]
        for i in tinted:
            captions[i] = plain[int(rng.integers(len(plain)))].format(name=DIGIT_NAMES[int(labels[i])])
    return Captioned(pixels, captions, ["mnist"] * len(captions), labels.astype(np.int64))


def shapes_captioned(n: int, image_size: int, seed: int) -> Captioned:
    data = generate_shapes(n, seed, ShapesConfig(image_size=image_size))
    return Captioned(data.images, data.captions, ["shapes"] * n, data.labels("shape"))


def empty_captioned(n: int, image_size: int, seed: int) -> Captioned:
    rng = np.random.default_rng(seed + 1)
    captions = [BACKGROUND_CAPTIONS[int(rng.integers(len(BACKGROUND_CAPTIONS)))] for _ in range(n)]
    return Captioned(np.zeros((n, 3, image_size, image_size), dtype=np.uint8), captions, ["empty"] * n,
                     np.full(n, -1, dtype=np.int64))


def build_corpus(name: str, image_size: int, seed: int = 0, n_mnist: int | None = None, n_shapes: int = 20000,
                 holdout: int = 5000, data_dir=None, embedded: bool = False, empty_fraction: float = 0.05,
                 tint: float = 0.0) -> Captioned:
    if name not in CORPORA:
        raise ConfigError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    parts = []
    if name in ("mnist", "mnist-shapes"):
        parts.append(mnist_captioned(n_mnist, image_size, seed, holdout, data_dir, embedded, tint=tint))
    if name in ("shapes", "mnist-shapes"):
        parts.append(shapes_captioned(n_shapes, image_size, seed))
    n_empty = int(round(empty_fraction * sum(len(p) for p in parts)))
    if n_empty:
        parts.append(empty_captioned(n_empty, image_size, seed))
    images = np.concatenate([p.images for p in parts])
    captions = [c for p in parts for c in p.captions]
    source = [s for p in parts for s in p.source]
    labels = np.concatenate([p.labels for p in parts])
    order = np.random.default_rng(seed).permutation(len(captions))
    return Captioned(images[order], [captions[i] for i in order], [source[i] for i in order], labels[order])
