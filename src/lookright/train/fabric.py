"""Devices and precision of the training step through Lightning Fabric.

The trainer keeps the plain model for what reads it by name (checkpoints are its plain
``state_dict``, evaluation runs it in full precision); Fabric wraps it for the training forward,
``fabric.backward`` and the optimiser step. ``train.devices > 1`` runs data-parallel (Fabric's
DDP strategy, processes started with ``spawn``; gloo on CPU, NCCL on CUDA): each process holds
the same model, takes its contiguous part of every batch of the seeded permutation, and DDP
averages the gradients, so a step equals the one-device step on the whole batch when every
part has the same size (BatchNorm statistics and counterfactual partners stay per process).
"""

from __future__ import annotations

import torch
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy
from torch import nn

from lookright.errors import ConfigError
from lookright.train.config import RunConfig
from lookright.train.schedules import create_optimizer, create_scheduler

#: train.precision -> Fabric's name for it
PRECISIONS = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


def check_accelerator(cfg: RunConfig, device: torch.device) -> None:
    """Refuse what this trainer cannot do correctly yet (before a run folder is touched)."""
    train = cfg.train
    if train.devices > 1:
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"train.devices={train.devices} on {device}: several devices need CUDA GPUs or CPU "
                              "processes; use train.devices=1")
        if device.type == "cuda" and device.index is not None:
            raise ConfigError(f"train.device={device} with train.devices={train.devices}: a run on several GPUs "
                              "takes the first visible ones; set train.device=cuda and choose them with CUDA_VISIBLE_DEVICES")
        if device.type == "cuda" and torch.cuda.device_count() < train.devices:
            raise ConfigError(f"train.devices={train.devices} but {torch.cuda.device_count()} CUDA GPUs are visible")
    if train.precision == "16-mixed" and device.type != "cuda":
        raise ConfigError(f"train.precision=16-mixed needs a CUDA GPU (train.device is {device}); "
                          "use train.precision=bf16-mixed on CPU")


def create_fabric(cfg: RunConfig, device: torch.device) -> Fabric:
    """One device (``strategy: auto`` or ``ddp``), or DDP over ``train.devices`` processes. The
    trainer adds ``0 * sum(logits)`` to the loss on several devices, so that every parameter has a
    gradient at every step (a classifier bias gets none from an attention-only phase 1); such a
    parameter then sees a zero gradient instead of none, the same update unless weight decay is set."""
    check_accelerator(cfg, device)
    precision = PRECISIONS[cfg.train.precision]
    if cfg.train.devices > 1:
        strategy = DDPStrategy(start_method="spawn")
        return Fabric(accelerator=device.type, devices=cfg.train.devices, strategy=strategy, precision=precision)
    devices: int | list[int] = [device.index or 0] if device.type == "cuda" else 1
    return Fabric(accelerator=device.type, devices=devices, strategy="auto", precision=precision)


def setup_model(fabric: Fabric, model: nn.Module, compile: bool = False) -> nn.Module:
    """The training-step module: Fabric's wrapper (``.module`` is ``model`` itself), compiled if asked."""
    return fabric.setup_module(torch.compile(model) if compile else model)


def setup_optimizer(fabric: Fabric, model: nn.Module, cfg: RunConfig, length: int, state: dict | None = None):
    """A fresh optimiser and scheduler for a phase of ``length`` epochs, their states loaded from
    ``state`` (a checkpoint) when given; returns ``(fabric_optimizer, scheduler)``."""
    optimizer = create_optimizer(model.parameters(), cfg.optim, fused=cfg.train.fast)
    scheduler = create_scheduler(optimizer, cfg.scheduler, length)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    return fabric.setup_optimizers(optimizer), scheduler


def precision_state(fabric: Fabric) -> dict:
    """The precision plugin's state for a checkpoint: 16-mixed's gradient-scaler scale and growth
    tracker (empty for 32 and bf16-mixed), so that a resumed run scales its losses as an uninterrupted one."""
    return fabric.strategy.precision.state_dict()


def load_precision_state(fabric: Fabric, state: dict) -> None:
    """Restore :func:`precision_state` from a checkpoint (checkpoints without it keep the fresh scaler)."""
    if state.get("precision"):
        fabric.strategy.precision.load_state_dict(state["precision"])
