"""Models used by the papers, in a registry: ``create_model("lenet")``."""

from lookright.models import cdep, lenet, resnet  # noqa: F401  (register models)
from lookright.models.base import MODELS, InputSpec, create_model

__all__ = ["MODELS", "InputSpec", "create_model"]
