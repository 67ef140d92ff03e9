"""torchvision ResNet-18 for larger images (CAM on ``layer4``, classifier ``fc``).

``weights`` may be a local ``.pt``/``.pth`` state-dict file; nothing is downloaded.
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
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=False)
    model.input_spec = InputSpec(size=image_size, channels=3)
    model.cam_layer = "layer4"
    model.classifier = "fc"
    return model
