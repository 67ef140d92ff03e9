"""What the step benchmarks share: interleaved median timing and the training steps they time.

``benchmarks/`` is on ``sys.path`` when a benchmark runs as a script, so they ``import timing``.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fns: dict[str, Callable[[], object]], rounds: int, device: torch.device,
            warmup: int = 3) -> dict[str, float]:
    """Median seconds of each function: every round runs each once, in a shuffled order, so load
    drift and cache effects hit every variant alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)  # no variant always runs right after the heaviest one
        for key in order:
            fn = fns[key]
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step(opt: torch.optim.Optimizer, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """One optimiser step on ``loss_fn()``: zero grads, backward, step."""
    def run():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
    return run


def ce_loss(model, x, y) -> Callable[[], torch.Tensor]:
    return lambda: F.cross_entropy(model(x), y)


def aligned_loss(model, x, y, extractor, loss, target) -> Callable[[], torch.Tensor]:
    """Cross-entropy plus an alignment loss on the map taken from the same forward pass."""
    def total():
        maps, logits = extractor.with_logits(model, x, y, differentiable=True)
        return F.cross_entropy(logits, y) + loss(maps, target)
    return total
