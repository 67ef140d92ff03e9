"""Streaming a user dataset's train split: decode one image and its masks from disk per item.

:class:`StreamSplit` stands in for a train :class:`~lookright.data.benchmark.Split` that is not
held in memory; :class:`RecordDataset` decodes an item with the same function as the in-memory
path (identical pixels) and applies ``data.augment``, a list of ``torchvision.transforms.v2``
transforms, jointly to the image and its masks (``tv_tensors.Mask``: geometric transforms move
the masks with the image, photometric ones leave them alone). :func:`batch_loader` yields
exactly the index slices of the trainer's seeded permutation, so without augmentation a
streamed run sees the same batches as an in-memory one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lookright.data.decode import decode_record
from lookright.data.records import Problems, Record
from lookright.errors import ConfigError


@dataclass
class StreamSplit:
    """Undecoded records with their class indices; images decode to ``channels`` x ``size`` x ``size``."""

    records: list[Record]
    y: np.ndarray
    size: int
    channels: int
    what: str

    def __len__(self) -> int:
        return len(self.y)


def decoded_bytes(n: int, size: int, channels: int = 3) -> int:
    """What holding ``n`` decoded images costs in memory: the float32 model input plus two uint8 masks."""
    return n * size * size * (4 * channels + 2)


def joint_transform(augment: list):
    """``data.augment`` -> one ``v2.Compose`` (None when empty); items are v2 class names or ``{name: options}``."""
    if not augment:
        return None
    from torchvision.transforms import v2

    steps = []
    for item in augment:
        name, options = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        if isinstance(item, dict) and len(item) != 1:
            raise ConfigError(f"data.augment: {item!r} must name one transform, e.g. {{RandomRotation: {{degrees: 10}}}}")
        cls = getattr(v2, name, None)
        if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
            raise ConfigError(f"data.augment: {name!r} is not a torchvision.transforms.v2 transform "
                              "(e.g. RandomHorizontalFlip, RandomRotation, ColorJitter)")
        try:
            steps.append(cls(**(options or {})))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"data.augment: {name}({options}): {exc}") from None
    return v2.Compose(steps)


class RecordDataset(Dataset):
    """Item ``i``: ``(x uint8 (C, H, W), y, mask uint8 (H, W), shortcut uint8 (H, W))``."""

    def __init__(self, split: StreamSplit, augment: list | None = None) -> None:
        self.split = split
        self.transform = joint_transform(augment or [])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        s = self.split
        img, mask, shortcut, found = decode_record(s.records[i], s.size)
        if found:
            problems = Problems(s.what)
            for message in found:
                problems.add(message)
            problems.raise_if_any("the file changed or broke after the run started")
        x = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(img, (s.size, s.size, s.channels)).transpose(2, 0, 1)))
        mask, shortcut = torch.from_numpy(mask), torch.from_numpy(shortcut)
        if self.transform is not None:
            from torchvision import tv_tensors

            x, mask, shortcut = (t.as_subclass(torch.Tensor) for t in self.transform(
                tv_tensors.Image(x), tv_tensors.Mask(mask), tv_tensors.Mask(shortcut)))
        return x, int(s.y[i]), mask, shortcut


def first_images(split, n: int) -> torch.Tensor:
    """The first ``n`` images of a :class:`~lookright.data.benchmark.Split` or a :class:`StreamSplit`, uint8 ``(n, C, H, W)``."""
    if isinstance(split, StreamSplit):
        dataset = RecordDataset(split)
        return torch.stack([dataset[i][0] for i in range(min(n, len(split)))])
    return torch.from_numpy(split.x[:n])


def shard_slices(perm: torch.Tensor, batch_size: int, shard: tuple[int, int] = (0, 1)):
    """The trainer's batches: the index slices ``perm[k * bs : (k + 1) * bs]`` in order, each cut
    into ``world`` near-equal contiguous parts of which process ``rank`` takes its own
    (``shard = (rank, world)``; one process takes whole slices). A last slice with fewer images
    than processes is left out on every process, so that all take the same number of steps."""
    rank, world = shard
    for start in range(0, len(perm), batch_size):
        idx = perm[start : start + batch_size]
        if world == 1:
            yield idx
        elif len(idx) >= world:
            yield idx.tensor_split(world)[rank]


class PermutationBatches(Sampler):
    """:func:`shard_slices` of ``perm`` as a batch sampler."""

    def __init__(self, perm: torch.Tensor, batch_size: int, shard: tuple[int, int] = (0, 1)) -> None:
        self.perm, self.batch_size, self.shard = perm.cpu(), batch_size, shard

    def __len__(self) -> int:
        return sum(1 for _ in shard_slices(self.perm, self.batch_size, self.shard))

    def __iter__(self):
        for idx in shard_slices(self.perm, self.batch_size, self.shard):
            yield idx.tolist()


def batch_loader(dataset: RecordDataset, perm: torch.Tensor, batch_size: int, workers: int, seed: int,
                 pin_memory: bool = False, shard: tuple[int, int] = (0, 1)) -> DataLoader:
    """A DataLoader over ``perm``'s batches (this process's shards); ``seed`` seeds the workers'
    augmentation (not the global RNG)."""
    return DataLoader(dataset, batch_sampler=PermutationBatches(perm, batch_size, shard), num_workers=workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed + 1_000_003 * shard[0]))
