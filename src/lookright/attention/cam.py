"""Class activation maps (CAM) for models with a global-average-pooling head.

``CAM_c(i, j) = sum_k W[c, k] * A_k(i, j)`` with ``A`` the hooked layer's output (pre-ReLU
unless ``post_relu``) and ``W`` the final linear layer's weights. One forward pass and one
weighted channel sum: no backward is needed.

CAM applies only when ``W`` reads the spatial mean of ``A`` (a global-average-pooling head).
The head's name is ``model.cam_classifier`` when the model has that attribute (library
backbones, whose own ``classifier`` may be a module), else ``model.classifier`` when it is a
string. A model says when CAM does not apply: that name is ``None`` and
``model.cam_unsupported`` gives the reason (backbones check it by a probe forward, see
:mod:`lookright.models.heads`); asking for CAM then raises a ConfigError with that reason.
An explicit ``classifier=`` overrides the model's verdict.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from lookright.attention.base import EXTRACTORS, Extractor, capture, layer_of, resolve_targets
from lookright.errors import ConfigError


@EXTRACTORS.register("cam")
class CAM(Extractor):
    name = "cam"

    def __init__(self, layer: str | None = None, classifier: str | None = None, post_relu: bool = False) -> None:
        self.layer = layer
        self.classifier = classifier
        self.post_relu = post_relu

    def _weights(self, model: nn.Module) -> torch.Tensor:
        reason = None if self.classifier else cam_unsupported(model)
        if reason:
            raise ConfigError(f"CAM does not apply to {type(model).__name__}: {reason}; use 'gradcam'")
        name = self.classifier or cam_classifier(model)
        fc = model.get_submodule(name)
        if not isinstance(fc, nn.Linear):
            raise ConfigError(f"CAM classifier {name!r} must be nn.Linear, got {type(fc).__name__}")
        return fc.weight

    def with_logits(self, model, x, target_class=None, differentiable=False):
        weights = self._weights(model)
        grad_mode = contextlib.nullcontext() if differentiable else torch.no_grad()
        with grad_mode, capture(layer_of(model, self.layer)) as store:
            logits = model(x)
            acts = store["output"]
            if acts.shape[1] != weights.shape[1]:
                raise ConfigError(
                    f"CAM layer has {acts.shape[1]} channels but the classifier takes {weights.shape[1]}"
                )
            if self.post_relu:
                acts = F.relu(acts)
            maps = self.maps(acts, weights, logits, target_class)
        return maps, logits

    def maps(self, acts: torch.Tensor, weights: torch.Tensor, logits: torch.Tensor, target_class) -> torch.Tensor:
        """``(B, h, w)`` maps from the hooked activations and the head's weights."""
        return class_activation_map(acts, weights, resolve_targets(target_class, logits))


def cam_classifier(model: nn.Module) -> str | None:
    """The name of the linear head CAM weights by (see the module docstring)."""
    if hasattr(model, "cam_classifier"):
        return model.cam_classifier
    name = getattr(model, "classifier", None)
    return name if isinstance(name, str) else None


def cam_unsupported(model: nn.Module) -> str | None:
    """Why CAM does not apply to ``model`` (``None`` when it does)."""
    reason = getattr(model, "cam_unsupported", None)
    if reason:
        return reason
    if not cam_classifier(model):
        return "the model names no classifier that reads a global-average-pooled map (model.classifier is None)"
    return None


def class_activation_map(acts: torch.Tensor, weights: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` activations, ``(K, C)`` head weights, ``(B,)`` classes -> ``(B, h, w)`` CAMs."""
    # a broadcast multiply-sum: on CPU it is several times faster than einsum's bmm here
    return (acts * weights[classes][:, :, None, None]).sum(dim=1)


@EXTRACTORS.register("cam-all-classes")
class AllClassCAM(CAM):
    """Class-agnostic CAM: ``sum_c |CAM_c|`` over every class, on ``ReLU(A)`` (what the head reads).

    A loss on the true class's CAM leaves the other classes free to read a cue outside the mask
    (their evidence shifts the softmax just as well); this map is large wherever *any* class
    draws evidence, so a loss on it constrains every class's evidence, not only the true
    class's. ``target_class`` is ignored (the map is the same for every class).
    """

    name = "cam-all-classes"

    def __init__(self, layer: str | None = None, classifier: str | None = None) -> None:
        super().__init__(layer, classifier, post_relu=True)

    def maps(self, acts, weights, logits, target_class):
        return torch.einsum("bkhw,ck->bchw", acts, weights).abs().sum(dim=1)
