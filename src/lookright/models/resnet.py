"""torchvision ResNet-18 for larger images (CAM on ``layer4``, classifier ``fc``).

``weights`` may be a local ``.pt``/``.pth`` state-dict file; nothing is downloaded. It is loaded
strictly, except that a classifier ``fc`` of another class count (ImageNet's 1000) is left at
its fresh initialisation; any other missing, unexpected or mis-shaped key is a ConfigError.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from lookright.errors import ConfigError
from lookright.models.base import MODELS, InputSpec


@MODELS.register("resnet18")
def resnet18(num_classes: int = 10, image_size: int = 224, weights: str | None = None) -> nn.Module:
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.options.weights: no file at {path}; give a local state-dict file")
        model.load_state_dict(backbone_state(path, model), strict=False)
    model.input_spec = InputSpec(size=image_size, channels=3)
    model.cam_layer = "layer4"
    model.classifier = "fc"
    return model


def backbone_state(path: Path, model: nn.Module) -> dict:
    """The state dict at ``path``, checked against ``model``; ``fc.*`` dropped when its shape differs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"model.options.weights: {path} is not a readable state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"model.options.weights: {path} holds a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    fc_differs = any(k.startswith("fc.") and k in own and getattr(v, "shape", None) != own[k].shape
                     for k, v in state.items())
    if fc_differs:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(k for k in own if k not in state and not (fc_differs and k.startswith("fc.")))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(k for k, v in state.items() if k in own and getattr(v, "shape", None) != own[k].shape)
    if missing or unexpected or shapes:
        def show(keys):
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        problems = [f"missing {show(missing)}" if missing else "", f"unexpected {show(unexpected)}" if unexpected else "",
                    f"wrong shape {show(shapes)}" if shapes else ""]
        raise ConfigError(f"model.options.weights: {path} is not a ResNet-18 state dict ("
                          + "; ".join(p for p in problems if p) + ")")
    return state
