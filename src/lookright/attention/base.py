"""The extractor interface and the forward hook it uses.

An extractor is called as ``extractor(model, x, target_class)`` and returns a ``(B, h, w)``
attention tensor on the model's device. ``target_class`` is ``None`` (the predicted class),
an ``int`` (that class for every image) or a ``(B,)`` tensor (e.g. the true labels).
With ``differentiable=True`` the map keeps its graph to the model's parameters so that a loss
on it trains the model; otherwise it is detached. Extractors never change ``model.training``.
``with_logits`` returns ``(maps, logits)`` from the same forward pass, for training loops.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lookright.errors import AttentionError, ConfigError
from lookright.registry import Registry


class Extractor:
    """Base class: subclasses implement ``with_logits``."""

    name = "extractor"

    def with_logits(
        self, model: nn.Module, x: torch.Tensor, target_class=None, differentiable: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __call__(self, model: nn.Module, x: torch.Tensor, target_class=None, differentiable: bool = False):
        return self.with_logits(model, x, target_class, differentiable)[0]


EXTRACTORS: Registry[Extractor] = Registry("attention extractor")


def create_extractor(name: str, **options) -> Extractor:
    return EXTRACTORS.create(name, **options)


def create_extractor_from(name: str, shared: dict, options: dict | None = None) -> Extractor:
    """Build extractor ``name`` from shared settings, passing each only the keys it accepts
    (e.g. ``layer`` goes to CAM and Grad-CAM, not to input gradients), plus its own ``options``
    (every one of which it must accept)."""
    accepted = inspect.signature(EXTRACTORS.get(name)).parameters
    return create_extractor(name, **{k: v for k, v in shared.items() if k in accepted}, **(options or {}))


def resolve_targets(target_class, logits: torch.Tensor) -> torch.Tensor:
    """Turn ``None`` / int / tensor into a ``(B,)`` long tensor of classes on the logits' device."""
    batch = logits.shape[0]
    if target_class is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target_class, int):
        return torch.full((batch,), target_class, dtype=torch.long, device=logits.device)
    target = torch.as_tensor(target_class, device=logits.device).long().reshape(-1)
    if target.shape[0] != batch:
        raise AttentionError(f"target_class has {target.shape[0]} entries for a batch of {batch}")
    return target


def layer_of(model: nn.Module, name: str | None) -> nn.Module:
    name = name or getattr(model, "cam_layer", None)
    if not name:
        raise ConfigError("attention.layer is not set and the model names no default cam_layer")
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ConfigError(f"model has no layer {name!r}; layers: {', '.join(names)}") from None


@contextmanager
def capture(module: nn.Module, require_grad: bool = False) -> Iterator[dict]:
    """Record ``module``'s output of the next forward pass in ``store["output"]``.

    ``require_grad`` makes the output a graph leaf that requires grad when the model is frozen,
    so gradients with respect to it exist.
    """
    store: dict = {}

    def hook(_module, _inputs, output):
        if require_grad and not output.requires_grad:
            output.requires_grad_(True)
        store["output"] = output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def check_finite(maps: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(maps).all():
        raise AttentionError(f"{what} produced NaN or Inf attention; check the model's weights and inputs")
    return maps
