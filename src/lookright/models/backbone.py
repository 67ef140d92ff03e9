"""What every library backbone (``timm:``, ``torchvision:``) gets after it is built.

- ``input_spec``: size, mean and std from the library's config for the architecture
  (``image_size`` / ``mean`` / ``std`` options override them; a 1-channel model gets the mean
  of 3-channel statistics);
- local ``weights`` loaded strictly (:mod:`lookright.models.weights`), the head re-initialised
  when its class count differs; ``pretrained`` is refused (nothing is downloaded);
- ``classifier_name`` (the final linear layer), ``cam_classifier`` (the same name when CAM
  applies, else ``None``; not ``classifier``, which is a submodule of some models),
  ``cam_layer`` and ``cam_unsupported`` from :func:`lookright.models.heads.find_head`
  (``classifier`` / ``cam_layer`` options override the search);
- for token models (ViT): ``num_prefix_tokens`` and ``token_grid`` ``(h, w)``, which Grad-CAM
  uses to turn ``(B, T, D)`` tokens into a ``(B, D, h, w)`` map, and ``cam_layer`` set to the
  default Grad-CAM layer the factory chose.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lookright.errors import ConfigError
from lookright.models.base import InputSpec
from lookright.models.heads import find_head
from lookright.models.weights import load_local_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Options:
    """The options every backbone factory takes besides the library's own keyword arguments."""

    image_size: int | None = None
    mean: float | tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None
    weights: str | None = None
    cam_layer: str | None = None
    classifier: str | None = None


def refuse_download(pretrained) -> None:
    if pretrained:
        raise ConfigError("model.options.pretrained: nothing is downloaded here; set model.options.weights to a "
                          "local .safetensors or .pt file instead")


def _stats(value, channels: int):
    value = tuple(value) if isinstance(value, (list, tuple)) else value
    if isinstance(value, tuple) and channels == 1 and len(value) > 1:
        return sum(value) / len(value)
    return value


def input_spec(opts: Options, channels: int, size: int, mean, std) -> InputSpec:
    """The model's input format: the library's defaults, overridden by the options."""
    return InputSpec(size=int(opts.image_size or size), channels=channels,
                     mean=_stats(opts.mean if opts.mean is not None else mean, channels),
                     std=_stats(opts.std if opts.std is not None else std, channels))


def finish(model: nn.Module, name: str, opts: Options, spec: InputSpec, classifier: str | None = None,
           map_layer: str | None = None, tokens: tuple[int, tuple[int, int]] | None = None) -> nn.Module:
    """Attach spec, weights and head to a built backbone (see the module docstring).

    ``classifier`` is the library's own head name (else the last ``nn.Linear``), ``map_layer``
    its default attention layer when CAM does not apply, ``tokens`` ``(prefix, (h, w))`` for a
    token model.
    """
    head = find_head(model, spec.size, spec.channels, classifier=opts.classifier or classifier,
                     cam_layer=opts.cam_layer, tokens=tokens is not None)
    if opts.weights is not None:
        load_local_weights(model, opts.weights, head=head.classifier, what=name)
    model.input_spec = spec
    model.cam_classifier = None if head.cam_unsupported else head.classifier
    model.classifier_name = head.classifier
    model.cam_unsupported = head.cam_unsupported
    model.cam_layer = opts.cam_layer or (head.cam_layer if head.cam_unsupported is None else None) or map_layer \
        or head.cam_layer
    if tokens is not None:
        model.num_prefix_tokens, model.token_grid = tokens[0], tuple(tokens[1])
    if not model.cam_layer:
        raise ConfigError(f"{name}: no feature map found for attention; set model.options.cam_layer")
    model.get_submodule(model.cam_layer)  # a wrong override fails here, not at the first step
    return model
