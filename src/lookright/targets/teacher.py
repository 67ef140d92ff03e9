"""Teachers: ``teacher(images, indices) -> masks (B, H, W)`` in ``[0, 1]``.

A teacher says where a model *should* look. ``MaskTeacher`` reads ground-truth masks by index;
later teachers (VLM pseudo-masks) implement the same call. ``build_targets`` runs a teacher
and a post-processing pipeline over a whole split once, batched, so that training reads its
targets from one tensor on the device.
"""

from __future__ import annotations

from typing import Protocol

import torch

from lookright.errors import MaskError
from lookright.registry import Registry
from lookright.targets.morphology import MaskPipeline


class Teacher(Protocol):
    def __call__(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor: ...


TEACHERS: Registry[Teacher] = Registry("teacher")


@TEACHERS.register("mask")
class MaskTeacher:
    """Ground-truth masks ``(N, H, W)`` looked up by image index."""

    def __init__(self, masks: torch.Tensor) -> None:
        if masks.dim() != 3:
            raise MaskError(f"ground-truth masks must be (N, H, W), got {tuple(masks.shape)}")
        self.masks = masks

    def __call__(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if images.shape[0] != indices.shape[0]:
            raise MaskError(f"{images.shape[0]} images but {indices.shape[0]} indices")
        masks = self.masks[indices.to(self.masks.device)].float()
        if masks.shape[-2:] != images.shape[-2:]:
            raise MaskError(
                f"mask size {tuple(masks.shape[-2:])} does not match image size {tuple(images.shape[-2:])}"
            )
        return masks.clamp(0, 1)


def build_targets(
    teacher: Teacher,
    images: torch.Tensor,
    pipeline: MaskPipeline,
    grid: tuple[int, int],
    batch_size: int = 4096,
) -> torch.Tensor:
    """Teacher masks for every image, post-processed to ``grid``: ``(N, *grid)`` float."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        idx = torch.arange(start, min(start + batch_size, images.shape[0]))
        out.append(pipeline(teacher(images[idx], idx), grid))
    return torch.cat(out) if out else images.new_zeros((0, *grid), dtype=torch.float32)
