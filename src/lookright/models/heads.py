"""Find a backbone's classifier and CAM layer, and whether CAM applies, by one probe forward.

CAM applies when the classifier is a ``nn.Linear`` that reads exactly the spatial mean of a
feature map (a global-average-pooling head): then ``logit_c = mean_ij CAM_c(i, j) + b_c``.
That is checked numerically, not guessed from class names: one forward pass of a random
batch of one at the model's input size, in eval mode (running statistics untouched, the
global RNG not drawn from), records each module's ``(B, C, h, w)`` output with ``C`` the
classifier's input width; the CAM layer is the outermost such module, not itself a pool,
that runs before the last global pool ahead of the classifier and whose spatial mean equals
the classifier's input. A norm, a hidden layer or max pooling between the map and the
classifier, or a token readout (ViT), breaks that equality, and ``cam_unsupported`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lookright.errors import ConfigError

POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Head:
    classifier: str | None  # the final nn.Linear (also when CAM does not apply)
    cam_layer: str | None  # the pooled feature map (CAM), else the last map before the global pool
    cam_unsupported: str | None  # why CAM does not apply; None when it does


def last_linear(model: nn.Module) -> str | None:
    """Name of the last ``nn.Linear`` registered in ``model`` (``fc``, ``classifier.1``, ``heads.head``)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return names[-1] if names else None


def _is_global_pool(module: nn.Module, inp, out) -> bool:
    """A module that reduces a map to one value per channel (by its shape, or its pool class)."""
    if not isinstance(out, torch.Tensor):
        return False
    pooled = out.dim() == 2 or (out.dim() == 4 and out.shape[-2:].numel() == 1)
    spatial_in = bool(inp) and isinstance(inp[0], torch.Tensor) and inp[0].dim() == 4
    if not (pooled and spatial_in):
        return False
    return inp[0].shape[-2:].numel() > 1 or "pool" in type(module).__name__.lower()


def probe(model: nn.Module, size: int, channels: int, classifier: str) -> tuple[list, torch.Tensor]:
    """Run one probe forward; return ``[(name, is_pool, is_map, spatial_mean | None)]`` for the
    modules that finished before the classifier ran, in that order (the mean only for maps as
    wide as the classifier's input; pooling layers are not maps), and the classifier's input."""
    fc = model.get_submodule(classifier)
    width = fc.in_features
    records: list = []
    seen: dict = {}

    def hook(name):
        def record(module, inp, out):
            mean = None
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[1] == width:
                mean = out.detach().float().mean(dim=(2, 3)).clone()  # now: later in-place ops change out
            is_map = isinstance(out, torch.Tensor) and out.dim() == 4 and not isinstance(module, POOLS)
            records.append((name, _is_global_pool(module, inp, out), is_map, mean))
        return record

    def grab(_module, inp):
        if "input" not in seen:
            seen["input"], seen["at"] = inp[0].detach().float().flatten(1).clone(), len(records)

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    handles.append(fc.register_forward_pre_hook(grab))
    was_training = model.training
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"model cannot take {size}x{size} inputs ({exc}); set model.options.image_size") from None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if "input" not in seen:
        raise ConfigError(f"the classifier {classifier!r} is not used in the forward pass; set model.options.classifier")
    return records[: seen["at"]], seen["input"]


def find_head(model: nn.Module, size: int, channels: int, classifier: str | None = None,
              cam_layer: str | None = None, tokens: bool = False) -> Head:
    """Detect the head (see the module docstring). ``classifier`` / ``cam_layer`` override the
    search (CAM is still checked against them); ``tokens`` marks a token model (ViT)."""
    classifier = classifier or last_linear(model)
    if classifier is None:
        return Head(None, cam_layer, "the model has no nn.Linear classifier")
    try:
        fc = model.get_submodule(classifier)
    except AttributeError:
        raise ConfigError(f"model.options.classifier: the model has no module {classifier!r}") from None
    if not isinstance(fc, nn.Linear):
        raise ConfigError(f"model.options.classifier: {classifier!r} is a {type(fc).__name__}, not nn.Linear")
    if tokens:
        return Head(classifier, cam_layer, f"{classifier!r} reads a class token or pooled tokens, not the spatial "
                                           "mean of a feature map (a token model)")
    records, fc_input = probe(model, size, channels, classifier)
    # the last global pool before the classifier (squeeze-excitation blocks pool too, earlier)
    pool_at = max((i for i, (_, is_pool, _, _) in enumerate(records) if is_pool), default=len(records))
    before = records[:pool_at]
    maps = [name for name, is_pool, is_map, _ in before if is_map and not is_pool]
    if cam_layer is not None:
        means = [mean for name, _, _, mean in records if name == cam_layer and mean is not None]
        if means and torch.allclose(means[-1], fc_input, rtol=1e-4, atol=1e-5):
            return Head(classifier, cam_layer, None)
        return Head(classifier, cam_layer, f"{classifier!r} does not read the spatial mean of {cam_layer!r}'s output")
    matches = [name for name, is_pool, _, mean in before if mean is not None and not is_pool
               and torch.allclose(mean, fc_input, rtol=1e-4, atol=1e-5)]
    if matches:
        return Head(classifier, matches[-1], None)
    return Head(classifier, maps[-1] if maps else None,
                f"the input of {classifier!r} is not the spatial mean of any feature map: something between the "
                "pooling and the classifier (a norm, a hidden layer, max pooling) breaks the CAM decomposition")
