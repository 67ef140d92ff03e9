"""The shortcut-benchmark container and its registry.

A benchmark holds uint8 images in MNIST's order, channel-first ``(N, C, H, W)`` (28 x 28 for
the published variants, any size for others), labels, and two binary ground-truth masks per
image ``(N, H, W)``:

* ``mask``: the task-relevant region (the digit foreground, grey > 0);
* ``shortcut``: where the shortcut lives (the decoy patch; for ColorMNIST the colour is carried
  by the digit's own strokes, so the shortcut region *is* the foreground; attention cannot
  separate colour from shape spatially, and ColorMNIST measures shortcut reliance by accuracy
  under colour reversal instead).

A benchmark generator is ``(grey_images, labels, rule, rng) -> (images, shortcut_masks)`` or
``-> (images, shortcut_masks, masks)`` where ``rule`` is ``"train"`` (shortcut correlated with
the label) or ``"test"`` (shifted). Without ``masks`` the digit foreground (grey > 0) is the mask;
a generator that moves or rescales the digit returns its own. Register one with
``@register_benchmark("name")``; every split it makes is checked (:func:`check_masks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from lookright.data.mnist import MNIST, load_embedded, load_mnist
from lookright.errors import ConfigError, MaskError
from lookright.registry import Registry

Generator = Callable[[np.ndarray, np.ndarray, str, np.random.Generator], tuple[np.ndarray, ...]]
GENERATORS: Registry[Generator] = Registry("benchmark")
register_benchmark = GENERATORS.register


@dataclass
class Split:
    """One split: images (N, C, H, W) uint8, labels (N,) int64, mask and shortcut (N, H, W) uint8."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    shortcut: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Split:
        return Split(*(getattr(self, f.name)[index] for f in fields(self)))


class DataSource(str):
    """A dataset's description (a str, as written to ``metrics.json``) and its class names in label
    order (``classes``; None for the MNIST benchmarks, whose classes are the digits)."""

    classes: tuple[str, ...] | None

    def __new__(cls, description: str, classes=None) -> DataSource:
        source = super().__new__(cls, description)
        source.classes = None if classes is None else tuple(str(c) for c in classes)
        return source

    def __reduce__(self):
        return DataSource, (str(self), self.classes)


@dataclass
class Benchmark:
    name: str
    train: Split
    test: Split
    seed: int
    source: str
    mask_threshold: int = 0


def foreground(grey: np.ndarray, threshold: int = 0) -> np.ndarray:
    """Digit foreground: 1 where the grey digit is brighter than ``threshold`` (default: any ink)."""
    return (grey > threshold).astype(np.uint8)


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, {"train": 0, "test": 1, "val": 2}[split]])


def check_masks(name: str, x: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """Reject masks that cannot guide alignment, naming the fix.

    Each mask must be ``(N, H, W)`` with the images' ``N, H, W``, hold only 0 and 1, and not be
    empty or all-ones for every image (an all-ones relevant mask leaves nothing to align away
    from). Single empty masks are allowed: the losses skip and count them.
    """
    if x.ndim != 4:
        raise MaskError(f"benchmark {name!r}: images must be (N, C, H, W) uint8, got shape {x.shape}")
    n, _, h, w = x.shape
    for key, m in masks.items():
        fix = f"make the generator of {name!r} return {key} masks as uint8 (N, H, W) arrays of 0 and 1"
        if m.shape != (n, h, w):
            raise MaskError(f"benchmark {name!r}: {key} masks have shape {m.shape}, images {x.shape}; {fix}")
        if m.size and (m.min() < 0 or m.max() > 1):
            raise MaskError(f"benchmark {name!r}: {key} masks hold values outside {{0, 1}}; {fix}")
        area = m.reshape(n, -1).sum(axis=1)
        if n and (area == 0).all():
            raise MaskError(f"benchmark {name!r}: every {key} mask is empty; {fix} (1 where the {key} region is)")
        if n and (area == h * w).all():
            raise MaskError(f"benchmark {name!r}: every {key} mask covers the whole image, so nothing lies "
                            f"outside it; {fix}, marking only the {key} region")


def make_split(name: str, grey: np.ndarray, labels: np.ndarray, rule: str, seed: int, stream: str,
               mask_threshold: int = 0) -> Split:
    """One split; ``mask_threshold`` sets the digit mask ``grey > t`` for generators that return none."""
    generate = GENERATORS.get(name)
    out = generate(grey, labels, rule, _rng(seed, stream))
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise ConfigError(f"benchmark {name!r}: the generator must return (images, shortcut) or "
                          "(images, shortcut, mask)")
    x, shortcut = out[0], out[1]
    mask = out[2] if len(out) == 3 else foreground(grey, mask_threshold)
    x, mask, shortcut = (np.asarray(a) for a in (x, mask, shortcut))
    check_masks(name, x, {"mask": mask, "shortcut": shortcut})
    return Split(x=x.astype(np.uint8), y=labels.astype(np.int64), mask=mask.astype(np.uint8),
                 shortcut=shortcut.astype(np.uint8))


def create_benchmark(
    name: str,
    data_dir: str | Path | None = None,
    seed: int = 0,
    embedded: bool = False,
    mnist: MNIST | None = None,
    mask_threshold: int = 0,
) -> Benchmark:
    """Generate benchmark ``name`` from full MNIST (or the embedded subset) with a seed.

    ``mask_threshold``: the digit mask is ``grey > mask_threshold`` (Learning to Look's official
    pipeline uses 10) for benchmarks whose generator returns no mask of its own.
    """
    GENERATORS.get(name)  # fail early on an unknown name
    if mnist is None:
        mnist = load_embedded() if embedded else load_mnist(data_dir)
    train = make_split(name, mnist.train_images, mnist.train_labels, "train", seed, "train", mask_threshold)
    test = make_split(name, mnist.test_images, mnist.test_labels, "test", seed, "test", mask_threshold)
    return Benchmark(name=name, train=train, test=test, seed=seed, source=mnist.source, mask_threshold=mask_threshold)


def split_validation(
    bench: Benchmark, fraction: float, mode: str, seed: int, mnist_grey: np.ndarray | None = None
) -> tuple[Split, Split]:
    """Carve a validation split out of train.

    ``mode="in-distribution"``: a seeded random ``fraction`` of train, with train's shortcut rule
    (Learning to Look uses 0.16). ``mode="cdep"``: the last ``fraction`` of train (CDEP uses 0.1),
    regenerated from the grey digits with the *test* rule (reversed colours / shifted decoys);
    needs ``mnist_grey``, the grey training digits.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must lie in (0, 1), got {fraction}")
    n = len(bench.train)
    n_val = max(1, int(round(n * fraction)))
    if mode == "in-distribution":
        perm = np.random.default_rng([seed, 3]).permutation(n)
        return bench.train.take(np.sort(perm[n_val:])), bench.train.take(np.sort(perm[:n_val]))
    if mode == "cdep":
        if mnist_grey is None:
            raise ConfigError("validation mode 'cdep' needs the grey training digits")
        idx = np.arange(n - n_val, n)
        val = make_split(bench.name, mnist_grey[idx], bench.train.y[idx], "test", bench.seed, "val",
                         bench.mask_threshold)
        return bench.train.take(np.arange(n - n_val)), val
    raise ConfigError(f"unknown validation mode {mode!r}; choose 'in-distribution' or 'cdep'")
