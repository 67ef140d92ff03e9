"""Alignment losses, one file per family: ``create_loss("kl")``."""

from lookright.losses import camal, cdep, kl, rrr  # noqa: F401  (register losses)
from lookright.losses.base import LOSSES, Alignment, AlignmentLoss, create_loss, minmax

__all__ = ["LOSSES", "Alignment", "AlignmentLoss", "create_loss", "minmax"]
