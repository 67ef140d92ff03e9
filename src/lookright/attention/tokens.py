"""Token activations ``(B, T, D)`` of a token model (ViT) as a map ``(B, D, h, w)``.

The first ``num_prefix_tokens`` tokens (class, register, distillation tokens) are dropped; the
rest are patch tokens in row-major order over the patch grid. The prefix count and the grid
come from the model (``num_prefix_tokens``; ``token_grid`` or timm's ``patch_embed.grid_size``);
a model that names neither is taken to have no prefix when ``T`` is a square, else one class
token when ``T - 1`` is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lookright.errors import AttentionError


def _grid(model: nn.Module, patches: int) -> tuple[int, int] | None:
    grid = getattr(model, "token_grid", None)
    if grid is None and hasattr(model, "patch_embed"):
        grid = getattr(model.patch_embed, "grid_size", None)
    if grid is not None and grid[0] * grid[1] == patches:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(patches) if patches > 0 else 0
    return (side, side) if side * side == patches and side > 0 else None


def _prefix(model: nn.Module, tokens: int) -> int:
    prefix = getattr(model, "num_prefix_tokens", None)
    if prefix is not None:
        return int(prefix)
    return 0 if math.isqrt(tokens) ** 2 == tokens else 1


def tokens_to_grid(acts: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``(B, C, h, w)`` maps pass through; ``(B, T, D)`` tokens become ``(B, D, h, w)``."""
    if acts.dim() == 4:
        return acts
    if acts.dim() != 3:
        raise AttentionError(f"the attention layer gives a {acts.dim()}-d output {tuple(acts.shape)}; "
                             "need (B, C, h, w) maps or (B, T, D) tokens")
    prefix = _prefix(model, acts.shape[1])
    grid = _grid(model, acts.shape[1] - prefix)
    if grid is None:
        raise AttentionError(f"{acts.shape[1]} tokens with {prefix} prefix tokens do not form a square patch grid; "
                             "set the model's token_grid (h, w) and num_prefix_tokens")
    patches = acts[:, prefix:, :]
    return patches.transpose(1, 2).reshape(acts.shape[0], acts.shape[2], *grid)
