"""Attention extractors, one file per family: ``create_extractor("cam")``."""

from lookright.attention import cam, expected_gradients, gradcam, input_gradients  # noqa: F401  (register extractors)
from lookright.attention.base import EXTRACTORS, Extractor, create_extractor, create_extractor_from
from lookright.attention.cam import cam_unsupported

__all__ = ["EXTRACTORS", "Extractor", "cam_unsupported", "create_extractor", "create_extractor_from"]
