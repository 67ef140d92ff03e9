"""torchvision ResNet-18 for larger images (CAM on ``layer4``, classifier ``fc``).

``weights`` may be a local ``.pt``/``.pth``/``.safetensors`` state-dict file; nothing is
downloaded. It is loaded strictly (:mod:`lookright.models.weights`): a classifier ``fc`` of
another class count (ImageNet's 1000) is left at its fresh initialisation.
``torchvision:resnet18`` builds the same network through the generic backbone path.
"""

from __future__ import annotations

import torchvision
from torch import nn

from lookright.models.base import MODELS, InputSpec
from lookright.models.weights import load_local_weights


@MODELS.register("resnet18")
def resnet18(num_classes: int = 10, image_size: int = 224, weights: str | None = None) -> nn.Module:
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if weights is not None:
        load_local_weights(model, weights, head="fc", what="ResNet-18")
    model.input_spec = InputSpec(size=image_size, channels=3)
    model.cam_layer = "layer4"
    model.classifier = "fc"
    return model
