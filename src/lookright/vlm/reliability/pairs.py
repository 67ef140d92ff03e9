"""A shapes split with everything the protocols need, built once per (config, seed, split).

For each image: its attributes and label indices, its true caption, one conflicting caption per
strategy (:mod:`.conflicts`, with the conflicting value), and ``distractors`` captions of other
images of the split that differ from it in at least one evaluated attribute (the matching
protocol's ordinary candidates). Images are resized once to the CLIP's input size with
antialiasing and kept as floats in ``[0, 1]``; masks are kept at the generated size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lookright.data.shapes import ShapesConfig, ShapesData, generate_shapes
from lookright.errors import ConfigError
from lookright.vlm.reliability.conflicts import Conflict, check_strategies, conflicting_caption

SPLIT_OFFSET = {"train": 0, "test": 1}


def split_seed(seed: int, split: str) -> int:
    """Shapes seed of a split: ``1000 + 10 * seed + offset``; the small CLIP's pretraining corpus
    uses seed 0..(number of pretraining seeds) and its zero-shot test 10,007, so they never meet."""
    return 1000 + 10 * seed + SPLIT_OFFSET[split]


@dataclass
class ReliabilitySet:
    data: ShapesData
    pixels: torch.Tensor  # (N, 3, S, S) float in [0, 1] at the model's input size
    attributes: list[str]  # evaluated attributes, e.g. shape, color, position
    labels: dict[str, torch.Tensor]  # attribute -> (N,) index into its vocabulary
    conflicts: dict[str, list[Conflict]]  # strategy -> one conflict per image
    distractors: list[list[str]]  # per image, captions of other images

    def __len__(self) -> int:
        return len(self.data)

    @property
    def captions(self) -> list[str]:
        return self.data.captions

    def vocabulary(self, attribute: str) -> list[str]:
        return self.data.config.vocabulary(attribute)

    def conflict_labels(self, strategy: str) -> torch.Tensor:
        """Index of the conflicting value in its attribute's vocabulary, ``(N,)`` (-1 for random_text)."""
        out = []
        for c in self.conflicts[strategy]:
            out.append(-1 if c.attribute is None else self.vocabulary(c.attribute).index(c.value))
        return torch.tensor(out, dtype=torch.long)


def resize(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.as_tensor(images).float() / 255
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def build_set(n: int, seed: int, split: str, config: ShapesConfig, attributes: list[str], strategies: list[str],
              model_size: int, distractors: int = 3) -> ReliabilitySet:
    for a in attributes:
        config.vocabulary(a)  # raises on an unknown attribute
    check_strategies(strategies, config)
    data = generate_shapes(n, split_seed(seed, split), config)
    rng = np.random.default_rng(split_seed(seed, split) + 7)
    conflicts = {s: [conflicting_caption(s, c, a, config, rng) for c, a in zip(data.captions, data.attributes)]
                 for s in strategies}
    keys = [tuple(a[k] for k in attributes) for a in data.attributes]
    chosen = []
    for i in range(n):
        options = [j for j in rng.permutation(n)[: 8 * distractors + 8] if keys[j] != keys[i]]
        if len(options) < distractors:
            raise ConfigError(f"the {split} split is too small or too uniform to draw {distractors} distractors")
        chosen.append([data.captions[j] for j in options[:distractors]])
    labels = {a: torch.as_tensor(data.labels(a)) for a in attributes}
    return ReliabilitySet(data, resize(data.images, model_size), list(attributes), labels, conflicts, chosen)
