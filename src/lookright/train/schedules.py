"""Optimiser, LR scheduler and the alignment-weight ramp lambda(e)."""

from __future__ import annotations

import torch

from lookright.train.config import LossConfig, OptimConfig, SchedulerConfig


def create_optimizer(params, cfg: OptimConfig, fused: bool = False) -> torch.optim.Optimizer:
    """SGD or Adam; ``fused``: one fused kernel per step (``train.fast``), else PyTorch's default."""
    extra = {"fused": True} if fused else {}
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **extra)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, epochs: int):
    """Stepped once per epoch; ``epochs`` is the length of the phase it serves (for cosine)."""
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _e: 1.0)


def alignment_weight(cfg: LossConfig, epoch: int, attn_epochs: int) -> float:
    """lambda(e): ``lambda0`` (constant) or Learning to Look's ``lambda0 * (1 + (e - E_attn) / 10)``."""
    if cfg.ramp == "learning-to-look":
        return cfg.lambda0 * (1.0 + max(0, epoch - attn_epochs) / 10.0)
    return cfg.lambda0
