"""The fast paths of a training run (``train.fast: true``): same data order, same mathematics,
other floating-point summation orders.

* **channels-last** memory layout for the model's 4-d weights, the in-memory evaluation splits'
  images and each training batch (oneDNN's convolution and pooling kernels are faster on NHWC
  on CPU; a gather from an NHWC tensor comes back NCHW, so each batch is laid out after it);
* a **fused** optimiser step (``torch.optim.SGD/Adam(fused=True)``) instead of a loop over tensors;
* **no per-step host sync** for divergence: the epoch's summed losses are checked every
  :data:`CHECK_EVERY` steps and at the end of the epoch (one collective then on several
  devices, not one per step), so a NaN or infinite loss still stops the run (TrainingDiverged
  naming the epoch and the steps it lies between) before that epoch's checkpoint is written.

With ``train.fast: false`` none of this runs and a seed reproduces the reference path exactly.
On a run that learns and is not chaotic, a fast run's accuracies stay within
:data:`ACC_TOLERANCE` points of the reference run (``tests/test_fast.py``); a Learning to Look
run (lambda 160, momentum 0.98) moves by more under any change of summation order, the
reference path's own thread count included (docs/speed.md).
"""

from __future__ import annotations

import torch
from torch import nn

from lookright.errors import TrainingDiverged

#: steps between two divergence checks on the fast path
CHECK_EVERY = 50
#: accuracy points a fast run may differ from the reference run of the same seed (tested)
ACC_TOLERANCE = 0.5


def channels_last(model: nn.Module | None, *splits) -> None:
    """Move ``model``'s 4-d parameters and each split's ``x`` (objects with an ``x`` tensor, or None) to NHWC."""
    if model is not None:
        model.to(memory_format=torch.channels_last)
    for split in splits:
        if split is not None and getattr(split, "x", None) is not None and split.x.dim() == 4:
            split.x = split.x.contiguous(memory_format=torch.channels_last)


def check_due(step: int, steps: int) -> bool:
    """Whether the divergence check runs after ``step`` (0-based) of an epoch of ``steps``."""
    return (step + 1) % CHECK_EVERY == 0 or step + 1 == steps


def sums_diverged(run: str, epoch: int, step: int, sums: dict) -> TrainingDiverged:
    """The error for summed losses (``sums``: name -> tensor) found not finite after ``step``."""
    first = step - step % CHECK_EVERY
    parts = ", ".join(f"summed {k} {float(v):.4g}" for k, v in sums.items())
    return TrainingDiverged(
        f"{run}: the loss is not finite at epoch {epoch + 1}, between steps {first + 1} and {step + 1} ({parts}); "
        "training stopped there. Lower optim.lr or loss.lambda0; the last finished epoch's checkpoint is kept")
