"""Contextual Decomposition Explanation Penalization (CDEP, Rieger et al., ICML 2020).

Contextual decomposition (CD) splits the input into ``x = part + rest`` with
``part = R * x``, ``rest = (1 - R) * x`` for a region ``R`` and carries both streams through the
network so that ``s_part + s_rest = logits`` (completeness), layer by layer:

* conv / linear ``W, b``: ``p' = W p + b |W p| / (|W p| + |W r|)``, ``r' = W r + b |W r| / (...)``
  (bias split in proportion to the absolute linear parts; halves where both are zero);
* ReLU: ``p' = relu(p)``, ``r' = relu(p + r) - relu(p)``;
* max pool: both streams taken at the argmax positions of ``p + r``;
* global average pool / flatten: applied to each stream.

Penalty, as in CDEP's DecoyMNIST/ColorMNIST training (``score_funcs.cdep`` and
``code/DecoyMNIST/train_mnist_decoy.py`` of laura-rieger/deep-explanation-penalization): the
blob's scores are soft-maxed against the rest's, per class, and averaged over classes and images

    loss = 1 / (B K) sum_i sum_k exp(s_blob,ik) / (exp(s_blob,ik) + exp(s_rest,ik))

(``= sigmoid(s_blob - s_rest)`` averaged), the share of each logit CD assigns to the blob. The
labels play no part. CDEP's blob is the irrelevant region; lookright's target is the relevant
mask ``M`` (digit), so here ``blob = 1 - M``. Scale it with ``loss.lambda0``.

CD needs the model and its input, not an attention map: the trainer calls
``model_loss(model, x, y, M) -> (logits, Alignment)`` (``needs_model = True``), ``M`` being ``(B, H, W)``
at the model's input resolution; ``logits = s_blob + s_rest`` equal the model's forward logits.
Images whose ``M`` is empty or full are skipped (not counted in ``Alignment.valid``); a batch with
none left gives a zero loss that still has a graph. ``model.training`` is never changed.
Supported models: ``LeNetGAP`` and ``CDEPNet``, read through their named layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lookright.errors import ConfigError, MaskError
from lookright.losses.base import LOSSES, Alignment, AlignmentLoss
from lookright.models.cdep import CDEPNet
from lookright.models.lenet import LeNetGAP

#: each supported model's forward pass as a sequence of ops; layers are named attributes
LAYOUTS: dict[type, tuple[tuple, ...]] = {
    LeNetGAP: (("conv", "conv1"), ("relu",), ("maxpool", 2), ("conv", "conv2"), ("relu",), ("maxpool", 2),
               ("mean",), ("linear", "fc")),
    CDEPNet: (("conv", "conv1"), ("relu",), ("maxpool", 2), ("conv", "conv2"), ("relu",), ("maxpool", 2),
              ("flatten",), ("linear", "fc1"), ("relu",), ("linear", "fc2")),
}
_LAYER_TYPES = {"conv": nn.Conv2d, "linear": nn.Linear}


def layout_of(model: nn.Module) -> tuple[tuple, ...]:
    """The op sequence of a supported model, after checking its layers are the expected ones."""
    layout = next((ops for cls, ops in LAYOUTS.items() if isinstance(model, cls)), None)
    if layout is None:
        supported = ", ".join(cls.__name__ for cls in LAYOUTS)
        raise ConfigError(f"loss 'cdep' supports the models {supported}; got {type(model).__name__}")
    expected = {op[1]: _LAYER_TYPES[op[0]] for op in layout if op[0] in _LAYER_TYPES}
    for name, kind in expected.items():
        if not isinstance(getattr(model, name, None), kind):
            raise ConfigError(f"loss 'cdep': {type(model).__name__}.{name} should be an nn.{kind.__name__}")
    extra = sorted(n for n, _ in model.named_children() if n not in expected)
    if extra:
        raise ConfigError(f"loss 'cdep': {type(model).__name__} has layers the decomposition does not know: "
                          f"{', '.join(extra)}")
    return layout


def _affine(part: torch.Tensor, rest: torch.Tensor, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ConfigError(f"loss 'cdep' needs zero padding; {layer} pads with {layer.padding_mode!r}")
        p = F.conv2d(part, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        r = F.conv2d(rest, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        shape = (1, -1, 1, 1)
    else:
        p, r = F.linear(part, layer.weight), F.linear(rest, layer.weight)
        shape = (1, -1)
    if layer.bias is None:
        return p, r
    ap, ar = p.abs(), r.abs()
    total = ap + ar
    share = torch.where(total > 0, ap / torch.where(total > 0, total, torch.ones_like(total)), 0.5)
    bias = layer.bias.view(shape)
    return p + share * bias, r + (1.0 - share) * bias


def _relu(part: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = F.relu(part)
    return p, F.relu(part + rest) - p


def _maxpool(part: torch.Tensor, rest: torch.Tensor, kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
    _, idx = F.max_pool2d((part + rest).detach(), kernel, return_indices=True)
    flat = idx.flatten(2)
    return (part.flatten(2).gather(2, flat).view_as(idx), rest.flatten(2).gather(2, flat).view_as(idx))


def contextual_decomposition(model: nn.Module, x: torch.Tensor, region: torch.Tensor):
    """CD scores ``(s_region, s_rest)``, each ``(B, K)``, of ``region * x`` and ``(1 - region) * x``.

    ``region`` is ``(B, H, W)`` (or ``(H, W)``) in ``[0, 1]`` on ``x``'s grid; ``s_region + s_rest``
    equals ``model(x)`` up to rounding.
    """
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    layout = layout_of(model)
    if x.dim() != 4 or region.shape[-2:] != x.shape[-2:] or region.dim() not in (2, 3) \
            or (region.dim() == 3 and region.shape[0] != x.shape[0]):
        raise MaskError(f"cdep: input {tuple(x.shape)} must be (B, C, H, W) and the region "
                        f"{tuple(region.shape)} (B, H, W) on the same grid; resize the mask to the model input")
    region = region.to(device=x.device, dtype=x.dtype)
    part = region.unsqueeze(-3) * x
    rest = x - part
    for op in layout:
        kind = op[0]
        if kind in _LAYER_TYPES:
            part, rest = _affine(part, rest, getattr(model, op[1]))
        elif kind == "relu":
            part, rest = _relu(part, rest)
        elif kind == "maxpool":
            part, rest = _maxpool(part, rest, op[1])
        elif kind == "mean":
            part, rest = part.mean(dim=(2, 3)), rest.mean(dim=(2, 3))
        else:  # flatten
            part, rest = part.flatten(1), rest.flatten(1)
    return part, rest


@LOSSES.register("cdep")
class CDEPPenalty(AlignmentLoss):
    name = "cdep"
    default_extractor = "input-gradients"  # only for evaluation maps; the loss itself uses none
    needs_model = True

    def per_image(self, attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise ConfigError("loss 'cdep' needs the model and its input, not an attention map: "
                          "it is computed by model_loss(model, x, y, mask)")

    def model_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, region: torch.Tensor):
        """``(logits, Alignment(loss, valid))``: ``region`` is the relevant mask ``M``; the blob ``1 - M`` is penalised."""
        if region.dim() != 3 or region.shape[0] != x.shape[0]:
            raise MaskError(f"cdep: mask {tuple(region.shape)} must be (B, H, W) for a batch of {x.shape[0]}")
        relevant = region.to(device=x.device, dtype=x.dtype)
        blob = 1.0 - relevant
        valid = (relevant.flatten(1).sum(dim=1) > 0) & (blob.flatten(1).sum(dim=1) > 0)
        n_valid = int(valid.sum())
        s_blob, s_rest = contextual_decomposition(model, x, blob)
        logits = s_blob + s_rest
        share = torch.sigmoid(s_blob - s_rest).mean(dim=1)  # softmax over (blob, rest), mean over classes
        if n_valid == 0:
            return logits, Alignment(logits.sum() * 0.0, 0)
        return logits, Alignment(share[valid].mean(), n_valid)
