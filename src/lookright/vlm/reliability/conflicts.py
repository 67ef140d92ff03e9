"""Conflicting captions: ``strategy(caption, attributes, config, rng) -> caption``.

The image is never changed; only its caption is. With ``a`` the image's attributes
(:mod:`lookright.data.shapes`):

* ``shape_swap`` / ``color_swap`` / ``position_swap``: the phrase naming ``a[attr]`` is replaced
  (whole words, first occurrence) by another value of that attribute's vocabulary, drawn
  uniformly among the values different from the true one. A caption whose template does not
  name the attribute (e.g. "a photo of a red circle" has no position) is first re-rendered
  with the first template that names it, so that every swap really contradicts the image.
  The returned conflicting value is recorded (it is what a text-following model predicts).
* ``random_text``: an unrelated sentence (:data:`UNRELATED`) that names no shape, colour,
  position or size; it conflicts by carrying no information about the image.

A vocabulary with a single value cannot be swapped: that raises :class:`ConfigError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lookright.data.shapes import ShapesConfig
from lookright.errors import ConfigError

STRATEGIES = ("shape_swap", "color_swap", "position_swap", "random_text")
SWAPPED = {"shape_swap": "shape", "color_swap": "color", "position_swap": "position"}
UNRELATED = (
    "a cup of coffee on a wooden table",
    "the weather is nice today",
    "people walking along the beach at sunset",
    "a bowl of fresh fruit in the kitchen",
    "an old book lying open on a chair",
    "a dog running through tall grass",
    "a city street at night with traffic",
    "a mountain lake under a cloudy sky",
)


@dataclass(frozen=True)
class Conflict:
    caption: str
    strategy: str
    attribute: str | None  # the attribute the caption now contradicts (None for random_text)
    value: str | None  # the conflicting value it names


def check_strategies(strategies, config: ShapesConfig) -> list[str]:
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"unknown conflict strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    for s in strategies:
        if s in SWAPPED and len(config.vocabulary(SWAPPED[s])) < 2:
            raise ConfigError(f"{s} needs at least two {SWAPPED[s]} values to swap, the vocabulary has "
                              f"{config.vocabulary(SWAPPED[s])}; add values or drop the strategy")
    return list(strategies)


def _phrase(value: str) -> re.Pattern:
    return re.compile(rf"(?<![a-z]){re.escape(value)}(?![a-z])")


def naming_caption(caption: str, attributes: dict[str, str], attribute: str, config: ShapesConfig) -> str:
    """``caption`` if it names ``attributes[attribute]``, else the first template that does."""
    if _phrase(attributes[attribute]).search(caption):
        return caption
    for template in config.templates:
        if "{" + attribute + "}" in template:
            return template.format(**attributes)
    raise ConfigError(f"no caption template names the {attribute}; add one such as 'a {{{attribute}}} shape'")


def swap(caption: str, attributes: dict[str, str], attribute: str, config: ShapesConfig,
         rng: np.random.Generator) -> Conflict:
    vocab = config.vocabulary(attribute)
    others = [v for v in vocab if v != attributes[attribute]]
    if not others:
        raise ConfigError(f"cannot swap the {attribute}: its vocabulary has a single value {vocab}")
    value = others[int(rng.integers(len(others)))]
    base = naming_caption(caption, attributes, attribute, config)
    new = _phrase(attributes[attribute]).sub(value, base, count=1)
    return Conflict(new, f"{attribute}_swap", attribute, value)


def conflicting_caption(strategy: str, caption: str, attributes: dict[str, str], config: ShapesConfig,
                        rng: np.random.Generator) -> Conflict:
    if strategy in SWAPPED:
        return swap(caption, attributes, SWAPPED[strategy], config, rng)
    if strategy == "random_text":
        return Conflict(UNRELATED[int(rng.integers(len(UNRELATED)))], strategy, None, None)
    raise ConfigError(f"unknown conflict strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def names_value(caption: str, value: str) -> bool:
    return bool(_phrase(value).search(caption))
