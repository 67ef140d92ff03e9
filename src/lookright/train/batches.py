"""What the training loop iterates over: a split held on the device, or decoded from disk per batch.

:class:`TensorBatches` slices a :class:`Tensors` split (the in-memory path, fastest for small
data); :class:`StreamBatches` decodes the same index slices through a DataLoader; on several
devices each process takes its part of every slice (:func:`~lookright.data.stream.shard_slices`)
(:mod:`lookright.data.stream`). Both yield :class:`Batch` es with the same model inputs,
counterfactual masks and alignment targets, made per batch exactly as :func:`to_tensors`
makes them for a whole split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lookright.data.benchmark import Split
from lookright.data.counterfactual import input_masks
from lookright.data.stream import RecordDataset, StreamSplit, batch_loader, shard_slices
from lookright.targets import TEACHERS, build_targets
from lookright.train.config import RunConfig
from lookright.vlm.teacher import VLMTeacher, split_masks


@dataclass
class Tensors:
    """One split on the device: model inputs, labels, alignment targets, raw masks."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    mask: torch.Tensor
    shortcut: torch.Tensor
    input_mask: torch.Tensor | None = None  # (N, 1, h, w) relevant mask at the model input's size
    raw: torch.Tensor | None = None  # uint8 images, kept for a teacher run inside the loop
    teacher: object | None = None  # on-the-fly teacher: targets = pipeline(teacher(raw[idx], idx))

    def targets(self, idx: torch.Tensor, pipeline, grid) -> torch.Tensor:
        if self.target is not None:
            return self.target[idx]
        return pipeline(self.teacher(self.raw[idx], idx), grid)


@dataclass
class Batch:
    """One training batch on the device; ``targets()`` gives its alignment targets when asked."""

    x: torch.Tensor
    y: torch.Tensor
    input_mask: torch.Tensor | None
    targets: object  # () -> (B, *grid) targets


class TensorBatches:
    """Batches of a split held on the device: index slices of the permutation."""

    def __init__(self, data: Tensors, pipeline, grid) -> None:
        self.data, self.pipeline, self.grid = data, pipeline, grid

    def __len__(self) -> int:
        return len(self.data.y)

    def batches(self, perm: torch.Tensor, bs: int, epoch: int, shard: tuple[int, int] = (0, 1)):
        d = self.data
        for idx in shard_slices(perm.to(d.y.device), bs, shard):
            yield Batch(d.x[idx], d.y[idx], None if d.input_mask is None else d.input_mask[idx],
                        lambda idx=idx: d.targets(idx, self.pipeline, self.grid))


class StreamBatches:
    """The same batches decoded from disk by a DataLoader (``data.workers`` processes), then moved
    to the device; inputs, counterfactual masks and targets are made per batch as ``to_tensors``
    makes them for a whole split."""

    def __init__(self, split: StreamSplit, model: nn.Module, device, cfg: RunConfig, pipeline, grid) -> None:
        self.dataset = RecordDataset(split, cfg.data.augment)
        self.model, self.device, self.cfg, self.pipeline, self.grid = model, device, cfg, pipeline, grid

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, perm: torch.Tensor, bs: int, epoch: int, shard: tuple[int, int] = (0, 1)):
        cfg, device = self.cfg, self.device
        loader = batch_loader(self.dataset, perm, bs, cfg.data.workers, cfg.seed * 100_003 + epoch,
                              pin_memory=device.type == "cuda", shard=shard)
        for raw, y, mask, shortcut in loader:
            raw, y, mask, shortcut = (t.to(device, non_blocking=True) for t in (raw, y, mask, shortcut))
            x = self.model.input_spec.prepare(raw)
            input_mask = input_masks(mask, x.shape[-2:], cfg.augment.dilate) if cfg.augment.counterfactual > 0 else None
            yield Batch(x, y, input_mask,
                        lambda raw=raw, mask=mask, shortcut=shortcut: mask_targets(self.cfg, raw, mask, shortcut,
                                                                                     self.pipeline, self.grid))


def mask_targets(cfg: RunConfig, raw: torch.Tensor, mask: torch.Tensor, shortcut: torch.Tensor, pipeline, grid):
    """Alignment targets of a batch from its own masks (``target.source``: the relevant mask or the shortcut)."""
    teacher = TEACHERS.create("mask", masks=mask if cfg.target.source == "mask" else shortcut)
    return build_targets(teacher, raw, pipeline, grid)


def to_tensors(split: Split, model: nn.Module, device, cfg: RunConfig, pipeline, grid, split_name: str = "train",
               clip=None) -> Tensors:
    """A split on the device: prepared inputs, labels, masks, the counterfactual masks it needs
    (train with ``augment.counterfactual``, val for the counterfactual score) and alignment targets.

    The relevant mask behind the counterfactual masks and the targets is the split's own mask, or
    with ``target.teacher: vlm`` the teacher's pseudo-mask (cached; on the fly for the train
    targets in ``mode: on-the-fly``): an annotation-free run reads no ground-truth mask for
    training or selection. ``mask`` keeps the ground truth, for the alignment metrics only."""
    x = model.input_spec.prepare(torch.from_numpy(split.x)).to(device)
    mask = torch.from_numpy(split.mask).to(device)
    shortcut = torch.from_numpy(split.shortcut).to(device)
    data = Tensors(x=x, y=torch.from_numpy(split.y).to(device), target=None, mask=mask, shortcut=shortcut)
    vlm = cfg.target.teacher == "vlm"
    # the relevant mask at the input's size: for counterfactual augmentation (train) and the
    # counterfactual validation score (val); the shifted test split never needs it
    wants_input_mask = split_name == "val" or (split_name == "train" and cfg.augment.counterfactual > 0)
    if vlm and pipeline is not None and cfg.target.vlm.mode == "on-the-fly" and split_name == "train":
        data.raw = torch.from_numpy(split.x).to(device)
        data.teacher = VLMTeacher(cfg.target.vlm, split.y, clip=clip)
        return data
    relevant = mask
    if vlm and (pipeline is not None or wants_input_mask):
        teacher = VLMTeacher(cfg.target.vlm, split.y, clip=clip)
        masks, _status = split_masks(teacher, split.x, {"benchmark": cfg.data.name, "seed": cfg.seed, "split": split_name})
        relevant = torch.from_numpy(masks).to(device)
    if wants_input_mask:
        dilate = cfg.train.counterfactual_dilate if split_name == "val" else cfg.augment.dilate
        data.input_mask = input_masks(relevant, x.shape[-2:], dilate)
    if pipeline is None:
        return data
    raw = torch.from_numpy(split.x).to(device)  # the raw images only when targets are built from them
    if vlm:
        data.target = build_targets(TEACHERS.create("mask", masks=relevant), raw, pipeline, grid)
    else:
        data.target = mask_targets(cfg, raw, mask, shortcut, pipeline, grid)
    return data
