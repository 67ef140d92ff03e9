"""Synthetic geometric shapes with attributes, captions and pixel masks (seeded).

Each image holds one shape on a black background. Its attributes are drawn uniformly and
independently from the vocabularies: ``shape`` (default circle, square, triangle), ``color``
(default red, green, blue, yellow, each an RGB triple), ``position`` (default the four cells
of a 2 x 2 grid: top left, top right, bottom left, bottom right; the shape's centre is drawn
uniformly inside the middle 40% of its cell) and ``size`` (default small / large: radius
0.1 / 0.16 of the image side). ``caption`` fills one of the templates (drawn uniformly), and
``mask`` is the shape's footprint. All vocabularies and templates are configurable.

The same ``(config, n, seed)`` always gives the same images; splits are made by seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lookright.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
DEFAULT_COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40)}
DEFAULT_POSITIONS = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}
DEFAULT_TEMPLATES = (
    "a {size} {color} {shape} in the {position}",
    "a {color} {shape} in the {position}",
    "a photo of a {color} {shape}",
    "a {shape} that is {color}, {position}",
    "there is a {size} {color} {shape} at the {position}",
)
ATTRIBUTES = ("shape", "color", "position", "size")


@dataclass(frozen=True)
class ShapesConfig:
    image_size: int = 224
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colors: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_COLORS))
    positions: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_POSITIONS))
    sizes: dict[str, float] = field(default_factory=lambda: {"small": 0.1, "large": 0.16})
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    grid: int = 2

    def __post_init__(self) -> None:
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown:
            raise ConfigError(f"unknown shapes {unknown}; lookright draws {', '.join(SHAPES)}")
        for name in ATTRIBUTES:
            if len(self.vocabulary(name)) == 0:
                raise ConfigError(f"the {name} vocabulary is empty; give at least one value")
        bad = {k: v for k, v in self.positions.items() if not all(0 <= c < self.grid for c in v)}
        if bad:
            raise ConfigError(f"positions {bad} lie outside the {self.grid} x {self.grid} grid")
        if any(not 0 < r < 0.5 / self.grid * 2 for r in self.sizes.values()):
            raise ConfigError(f"sizes are radii as fractions of the image side in (0, 1/grid), got {self.sizes}")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be >= 16 pixels, got {self.image_size}")
        for t in self.templates:
            try:
                t.format(shape="s", color="c", position="p", size="z")
            except (KeyError, IndexError) as exc:
                raise ConfigError(f"template {t!r} uses an unknown field {exc}; fields: {ATTRIBUTES}") from None

    def vocabulary(self, attribute: str) -> list[str]:
        if attribute == "shape":
            return list(self.shapes)
        if attribute == "color":
            return list(self.colors)
        if attribute == "position":
            return list(self.positions)
        if attribute == "size":
            return list(self.sizes)
        raise ConfigError(f"unknown attribute {attribute!r}; attributes: {', '.join(ATTRIBUTES)}")


@dataclass
class ShapesData:
    images: np.ndarray  # (N, 3, S, S) uint8
    masks: np.ndarray  # (N, S, S) uint8
    attributes: list[dict[str, str]]
    captions: list[str]
    config: ShapesConfig

    def __len__(self) -> int:
        return len(self.captions)

    def labels(self, attribute: str) -> np.ndarray:
        """Index of each image's value in the attribute's vocabulary, ``(N,)`` int64."""
        vocab = self.config.vocabulary(attribute)
        return np.array([vocab.index(a[attribute]) for a in self.attributes], dtype=np.int64)


def footprint(shape: str, cx: float, cy: float, r: float, side: int) -> np.ndarray:
    """Bool ``(side, side)`` mask of a shape centred at ``(cx, cy)`` pixels with radius ``r``."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "cross":
        w = r * 0.35
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if shape == "triangle":  # upward, apex at the top
        top, base = cy - r, cy + r * 0.75
        half = (y - top) / (base - top) * r  # half-width grows linearly from the apex
        return (y >= top) & (y <= base) & (np.abs(dx) <= half)
    raise ConfigError(f"unknown shape {shape!r}")


def generate_shapes(n: int, seed: int = 0, config: ShapesConfig | None = None) -> ShapesData:
    """``n`` images with uniformly drawn attributes, captions and masks (see the module docstring)."""
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    cfg = config or ShapesConfig()
    rng = np.random.default_rng(seed)
    side, cell = cfg.image_size, cfg.image_size / cfg.grid
    images = np.zeros((n, 3, side, side), dtype=np.uint8)
    masks = np.zeros((n, side, side), dtype=np.uint8)
    attributes, captions = [], []
    for i in range(n):
        a = {k: cfg.vocabulary(k)[int(rng.integers(len(cfg.vocabulary(k))))] for k in ATTRIBUTES}
        row, col = cfg.positions[a["position"]]
        cx = (col + 0.3 + 0.4 * rng.random()) * cell
        cy = (row + 0.3 + 0.4 * rng.random()) * cell
        m = footprint(a["shape"], cx, cy, cfg.sizes[a["size"]] * side, side)
        images[i][:, m] = np.array(cfg.colors[a["color"]], dtype=np.uint8)[:, None]
        masks[i] = m
        attributes.append(a)
        captions.append(cfg.templates[int(rng.integers(len(cfg.templates)))].format(**a))
    return ShapesData(images, masks, attributes, captions, cfg)
