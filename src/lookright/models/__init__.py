"""Models in a registry: ``create_model("lenet")``, ``create_model("timm:resnet18")``,
``create_model("torchvision:resnet50")``."""

from lookright.models import cdep, lenet, resnet, timm_backbones, torchvision_backbones  # noqa: F401  (register)
from lookright.models.base import MODELS, InputSpec, create_model

__all__ = ["MODELS", "InputSpec", "create_model"]
