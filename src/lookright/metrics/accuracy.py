"""Accuracy, batched over a tensor dataset."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Predicted classes ``(N,)`` (the caller sets ``model.eval()``)."""
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``pred == y`` in percent."""
    return 100.0 * (pred == y).float().mean().item() if len(y) else float("nan")
