"""What the step benchmarks share: interleaved median timing and the training steps they time.

``benchmarks/`` is on ``sys.path`` when a benchmark runs as a script, so they ``import timing``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F


def run_parser(doc: str, out: str, rounds: int) -> argparse.ArgumentParser:
    """Options of the benchmarks that train a config: --config, --rounds, --threads, --out, KEY=VALUE overrides."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/colormnist-kl.yaml")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(out))
    parser.add_argument("overrides", nargs="*", help="config overrides (the embedded digits unless data.embedded=false)")
    return parser


def context(threads: int) -> dict:
    """The command as typed, the machine, torch, and the load average when the measurement started."""
    return {"command": shlex.join(["python", *sys.argv]), "machine": f"cpu {platform.machine()}, {threads} threads",
            "torch": torch.__version__, "load_average_1min": round(os.getloadavg()[0], 2)}


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
