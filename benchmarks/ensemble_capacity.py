"""Members per second, and the largest ensemble that fits, for LeNet and for CDEP's CNN.

LeNet trains Learning to Look's KL recipe (``configs/colormnist-kl.yaml``); CDEP's CNN, which has no
GAP head (its maps are Grad-CAM, which ensembles do not batch), trains vanilla
(``configs/decoymnist-cdep-cdepnet-vanilla.yaml``).

For each model, ensembles of S = 1, 2, 4, ... same-config members (seeds 0..S-1, each its own data
order) are trained end to end by :func:`lookright.train.ensemble.train_ensemble` (steps, per-epoch
evaluation, checkpoints, final metrics, figures), S doubling until ``--max-members`` or until the
device runs out of memory. Reported per S: wall seconds, *members per second*
(``S x epochs / wall``: member-epochs per second, the throughput of a sweep) and, on CUDA, the
peak memory. The largest S that finished is "the largest ensemble that fits" (on a CPU the
doubling stops at ``--max-members``, since host memory is not the limit there).

    python benchmarks/ensemble_capacity.py [--device cuda] [--max-members 1024] [--epochs 2]
        [--threads 1] [--out benchmarks/ensemble_capacity_results.json] [KEY=VALUE ...]

The data are the embedded 5,000 digits unless an override says ``data.embedded=false``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from timing import context  # benchmarks/ is on sys.path

from lookright.train import load_config
from lookright.train.ensemble import train_ensemble

MODELS = {"lenet": "configs/colormnist-kl.yaml", "cdep-cnn": "configs/decoymnist-cdep-cdepnet-vanilla.yaml"}


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def measure(config: str, size: int, overrides: list[str], folder: Path, device: str) -> dict:
    base = load_config(config, overrides)
    cfgs = [base.model_copy(update={"seed": s}, deep=True) for s in range(size)]
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    results = train_ensemble(cfgs, [folder / f"s{size}-m{i}" for i in range(size)])
    wall = time.perf_counter() - start
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(errors[0])
    row = {"members": size, "wall_s": round(wall, 2), "members_per_s": round(size * base.train.epochs / wall, 3)}
    if device == "cuda":
        row["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ensemble_capacity_results.json"))
    parser.add_argument("overrides", nargs="*", help="config overrides")
    args = parser.parse_args()
    overrides = ["data.embedded=true", "log.backends=[]", "eval.figure_images=2", f"train.epochs={args.epochs}",
                 "train.attn_epochs=0", f"train.threads={args.threads}", f"train.device={args.device}",
                 *args.overrides]
    report = {**context(args.threads), "device": args.device, "epochs": args.epochs, "models": {}}
    for name in args.models:
        rows, largest, stopped = [], 0, f"--max-members {args.max_members}"
        size = 1
        with tempfile.TemporaryDirectory() as tmp:
            while size <= args.max_members:
                try:
                    row = measure(MODELS[name], size, overrides, Path(tmp), args.device)
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    if not out_of_memory(exc):
                        raise
                    stopped = f"out of memory at {size} members"
                    break
                rows.append(row)
                largest = size
                print(f"{name}: {row}", flush=True)
                size *= 2
        report["models"][name] = {"config": MODELS[name], "rows": rows, "largest_that_fits": largest,
                                  "stopped": stopped}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
