"""Devices and precision of the training step through Lightning Fabric.

The trainer keeps the plain model for everything that reads it by name (extractors hook its
submodules, checkpoints are its plain ``state_dict``, evaluation runs it in full precision);
Fabric wraps it for the training forward, ``fabric.backward`` and the optimiser step. One
process on one device only: ``train.devices > 1`` and ``train.strategy: ddp`` are refused
(the in-memory permutation is not sharded per rank, nor are writes limited to rank 0).
"""

from __future__ import annotations

import torch
from lightning_fabric import Fabric
from torch import nn

from lookright.errors import ConfigError
from lookright.train.config import RunConfig
from lookright.train.schedules import create_optimizer, create_scheduler

#: train.precision -> Fabric's name for it
PRECISIONS = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


def check_accelerator(cfg: RunConfig, device: torch.device) -> None:
    """Refuse what this trainer cannot do correctly yet (before a run folder is touched)."""
    train = cfg.train
    if train.devices > 1 or train.strategy == "ddp":
        raise ConfigError(f"train.devices={train.devices}, train.strategy={train.strategy}: multi-device training "
                          "is not available yet; use train.devices=1 and train.strategy=auto")
    if train.precision == "16-mixed" and device.type != "cuda":
        raise ConfigError(f"train.precision=16-mixed needs a CUDA GPU (train.device is {device}); "
                          "use train.precision=bf16-mixed on CPU")


def create_fabric(cfg: RunConfig, device: torch.device) -> Fabric:
    check_accelerator(cfg, device)
    devices: int | list[int] = [device.index or 0] if device.type == "cuda" else 1
    return Fabric(accelerator=device.type, devices=devices, strategy="auto", precision=PRECISIONS[cfg.train.precision])


def setup_model(fabric: Fabric, model: nn.Module, compile: bool = False) -> nn.Module:
    """The training-step module: Fabric's wrapper (``.module`` is ``model`` itself), compiled if asked."""
    return fabric.setup_module(torch.compile(model) if compile else model)


def setup_optimizer(fabric: Fabric, model: nn.Module, cfg: RunConfig, length: int, state: dict | None = None):
    """A fresh optimiser and scheduler for a phase of ``length`` epochs, their states loaded from
    ``state`` (a checkpoint) when given; returns ``(fabric_optimizer, scheduler)``."""
    optimizer = create_optimizer(model.parameters(), cfg.optim)
    scheduler = create_scheduler(optimizer, cfg.scheduler, length)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    return fabric.setup_optimizers(optimizer), scheduler
