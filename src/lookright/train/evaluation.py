"""Validation and test metrics in batches, on a split held on the device or decoded per batch.

:class:`EvalSet` is a validation or shifted-test split as the metrics read it: batches of
inputs, labels, masks, alignment targets and (validation) counterfactual masks, in index order
or in any given order. In memory they are slices of a :class:`~lookright.train.batches.Tensors`;
streamed they are decoded from disk by a DataLoader, prepared on the device and dropped, so a
split never has to fit in memory. Every quantity is computed per image, so both give the same
numbers (accuracies exactly; losses to floating-point summation order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lookright.attention import create_extractor_from
from lookright.data.counterfactual import input_masks, partners, swap_fill
from lookright.data.stream import PermutationBatches, RecordDataset, StreamSplit
from lookright.errors import ConfigError
from lookright.losses import Alignment
from lookright.metrics import MetricAccumulator, accuracy, energy_pointing_game
from lookright.train.batches import Tensors, mask_targets, to_tensors
from lookright.train.config import RunConfig


@dataclass
class EvalBatch:
    """A batch of an :class:`EvalSet` on the device (``target``/``input_mask`` None when not made)."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    shortcut: torch.Tensor
    target: torch.Tensor | None
    input_mask: torch.Tensor | None


class EvalSet:
    """A validation (``name="val"``) or test split for the metrics; see the module docstring."""

    def __init__(self, split, model: nn.Module, device, cfg: RunConfig, pipeline, grid, name: str, clip=None) -> None:
        self.name, self.cfg, self.model, self.device, self.pipeline, self.grid = name, cfg, model, device, pipeline, grid
        if isinstance(split, StreamSplit):
            self.tensors, self.stream = None, split
            self.dataset = RecordDataset(split)
            self.y = torch.from_numpy(split.y).to(device)
        else:
            self.tensors, self.stream = to_tensors(split, model, device, cfg, pipeline, grid, name, clip), None
            self.y = self.tensors.y
        self.has_targets = pipeline is not None

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, bs: int, order: torch.Tensor | None = None):
        """:class:`EvalBatch` es of ``bs`` images in index order, or in ``order`` (an index tensor)."""
        order = torch.arange(len(self)) if order is None else order.cpu()
        if self.tensors is not None:
            d = self.tensors
            for start in range(0, len(order), bs):
                idx = order[start : start + bs].to(d.y.device)
                yield EvalBatch(d.x[idx], d.y[idx], d.mask[idx], d.shortcut[idx],
                                None if d.target is None else d.target[idx],
                                None if d.input_mask is None else d.input_mask[idx])
            return
        loader = DataLoader(self.dataset, batch_sampler=PermutationBatches(order, bs), num_workers=self.cfg.data.workers,
                            pin_memory=self.device.type == "cuda")
        for raw, y, mask, shortcut in loader:
            raw, y, mask, shortcut = (t.to(self.device, non_blocking=True) for t in (raw, y, mask, shortcut))
            x = self.model.input_spec.prepare(raw)
            target = (mask_targets(self.cfg, raw, mask, shortcut, self.pipeline, self.grid)
                      if self.has_targets else None)
            input_mask = input_masks(mask, x.shape[-2:], self.cfg.train.counterfactual_dilate) if self.name == "val" else None
            yield EvalBatch(x, y, mask, shortcut, target, input_mask)

    def head(self, n: int) -> EvalBatch:
        """The first ``n`` images as one batch (figures)."""
        return next(self.batches(max(1, min(n, len(self)))))


def alignment_step(model, extractor, loss_fn, x, y, target, target_mode,
                   differentiable=True) -> tuple[torch.Tensor, Alignment]:
    """Forward once; return logits and the batch's ``Alignment(loss, valid)``."""
    if loss_fn.needs_model:  # input-space penalties that read the model (CDEP)
        with torch.set_grad_enabled(differentiable):
            return loss_fn.model_loss(model, x, y, target)
    cls = y if target_mode == "label" else None
    maps, logits = extractor.with_logits(model, x, cls, differentiable=differentiable)
    return logits, loss_fn.evaluate(maps, target)


@torch.no_grad()
def predictions(model: nn.Module, data: EvalSet, bs: int) -> torch.Tensor:
    """Predicted classes ``(N,)`` in index order (the caller sets eval mode)."""
    return torch.cat([model(b.x).argmax(1) for b in data.batches(bs)])


@torch.no_grad()
def test_accuracy(model: nn.Module, data: EvalSet, bs: int) -> float:
    """Accuracy in percent, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    acc = accuracy(predictions(model, data, bs), data.y)
    model.train(was_training)
    return acc


@torch.no_grad()
def counterfactual_accuracy(model: nn.Module, data: EvalSet, clean: torch.Tensor, seed: int, bs: int) -> dict:
    """:func:`lookright.metrics.counterfactual.counterfactual_scores` (one partner draw, ``seed * 7919``)
    batch by batch: image ``i`` takes its context from partner ``p[i]`` of the whole split."""
    p = partners(len(data), torch.Generator().manual_seed(seed * 7919))
    preds = []
    for own, other in zip(data.batches(bs), data.batches(bs, p), strict=True):
        preds.append(model(swap_fill(own.x, own.input_mask, other.x, other.input_mask)).argmax(1))
    pred = torch.cat(preds)
    return {"acc": accuracy(pred, data.y), "consistency": accuracy(pred, clean)}


def evaluate(model, data: EvalSet, extractor, loss_fn, cfg: RunConfig) -> dict:
    """Accuracy, cross-entropy, the counterfactual score (validation) and, with a loss, the mean
    alignment loss over the images it is defined on; in eval mode. With a map-based loss the
    logits come from the extractor's forward (one pass per batch, not two)."""
    was_training = model.training
    model.eval()
    bs = cfg.train.eval_batch_size
    logits, total, n = [], 0.0, 0
    for b in data.batches(bs):
        batch_logits = None
        if loss_fn is not None and b.target is not None:
            batch_logits, (value, k) = alignment_step(model, extractor, loss_fn, b.x, b.y, b.target,
                                                      cfg.attention.target, differentiable=False)
            total, n = total + value.item() * k, n + k
        if batch_logits is None or loss_fn.needs_model:  # a map's forward gives the logits; CDEP's is its own
            with torch.no_grad():
                batch_logits = model(b.x)
        logits.append(batch_logits.detach())
    logits = torch.cat(logits)
    out = {"acc": accuracy(logits.argmax(1), data.y), "loss": F.cross_entropy(logits, data.y).item()}
    if data.name == "val":
        out["counterfactual"] = counterfactual_accuracy(model, data, logits.argmax(1), cfg.seed, bs)
    if loss_fn is not None and data.has_targets:
        out["align"] = total / n if n else None
    model.train(was_training)
    return out


def attention_mass(model, data: EvalSet, extractor, bs: int) -> dict:
    """Energy of the extractor's map (true class) on the digit and on the shortcut region."""
    was_training = model.training
    model.eval()
    digit, shortcut = MetricAccumulator(energy_pointing_game), MetricAccumulator(energy_pointing_game)
    for b in data.batches(bs):
        maps = extractor(model, b.x, b.y)
        digit.update(maps, b.mask)
        shortcut.update(maps, b.shortcut)
    model.train(was_training)
    return {"digit": digit.compute(), "shortcut": shortcut.compute()}


def input_gradient_mass(model, data: EvalSet, bs: int) -> dict:
    """Where the decision reads from, whatever the map shows: energy of the true class's squared
    input gradient ``(d log p_y / dx)^2`` on the digit and on the shortcut region."""
    return attention_mass(model, data, create_extractor_from("input-gradients", {"target": "class"}), bs)


def selection_score(cfg: RunConfig, epoch: int, val: dict) -> float | None:
    """The checkpoint-selection score of an epoch (higher is better; None: not eligible yet)."""
    rule = cfg.train.selection
    if rule == "last":
        return float(epoch)
    if epoch < cfg.train.attn_epochs:
        return None
    if rule == "val_loss":
        return -val["loss"]
    if rule == "counterfactual":
        return val["counterfactual"]["acc"]
    if rule in ("val_acc_x_align", "val_acc_x_exp_align"):
        if val.get("align") is None:
            raise ConfigError(f"train.selection {rule!r} needs an alignment loss")
        if rule == "val_acc_x_align":
            return val["acc"] * (1.0 - val["align"])
        return val["acc"] * math.exp(-cfg.train.selection_beta * val["align"])
    return val["acc"]


__all__ = ["EvalBatch", "EvalSet", "Tensors", "alignment_step", "attention_mass", "evaluate", "input_gradient_mass",
           "predictions", "selection_score", "test_accuracy"]
