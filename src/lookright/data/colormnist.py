"""ColorMNIST, CDEP variant.

Ten colours interpolated in HSL from red to purple. Each RGB channel is the grey digit times
the colour: ``x[c] = round(grey * colour[c] / 255)`` on a black background. Train digits take
``colour[y]``, test digits ``colour[9 - y]``, so a model that reads colour fails at test time.
The shortcut region is the digit's foreground (the colour lives on the strokes).
"""

from __future__ import annotations

import numpy as np

from lookright.data.benchmark import GENERATORS, foreground

COLOURS_HEX = (
    "ff0000", "f18600", "cae300", "47d500", "00c72c",
    "00b88f", "0072aa", "00119c", "3f008e", "800080",
)
COLOURS = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in COLOURS_HEX], dtype=np.uint16)


@GENERATORS.register("colormnist")
def colormnist(grey: np.ndarray, labels: np.ndarray, rule: str, rng: np.random.Generator):
    """CDEP's ColorMNIST: the digit coloured by its label in train, by 9 - label in test (RGB, 28 px)."""
    colour_index = labels if rule == "train" else 9 - labels
    colour = COLOURS[colour_index.astype(np.int64)]  # (N, 3)
    x = (grey[:, None, :, :].astype(np.uint16) * colour[:, :, None, None] + 127) // 255
    return x.astype(np.uint8), foreground(grey)
