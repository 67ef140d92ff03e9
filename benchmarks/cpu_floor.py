"""The arithmetic floor of a small-model study on this CPU: what no per-step saving can beat.

A plain training step (forward, cross-entropy, backward, SGD with momentum; no attention term, so
a lower bound for every aligned step) of the recipe's model is timed at several batch sizes, in
the default and the channels-last layout (interleaved rounds, median). The lowest cost per image
over all of them is the *floor*: the cost of the kernels themselves once every per-step overhead
is amortised. From it, with the recipe's images per run (``train images x epochs``, evaluation
left out, so again a lower bound):

* ``floor_run_s``: the least wall time of one run on this machine with these kernels;
* ``floor_ensemble_ratio``: the least wall time of S members as one batched model (S times the
  arithmetic at the floor) over one member at its own batch size (``batch_size`` column);
* ``floor_grid_hours``: the least time of ``--grid-runs`` runs.

``FlopCounterMode`` counts the step's floating-point operations, so the floor is also given in
GFLOP/s. Compare ``floor_run_s`` with a wall-time bar: a bar below it needs faster kernels or
another device, not less overhead.

    python benchmarks/cpu_floor.py [--threads 2] [--rounds 7] [--images 50400 --epochs 30]
        [--grid-runs 605] [--out benchmarks/floor_results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import context, measure  # benchmarks/ is on sys.path
from torch.utils.flop_counter import FlopCounterMode

from lookright.models.lenet import LeNetGAP

BATCHES = (32, 128, 512, 2048)


def step(batch: int, channels_last: bool):
    torch.manual_seed(0)
    model = LeNetGAP()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return run


def flops_per_image() -> float:
    run = step(32, False)
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=50_400, help="training images of one run")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32, help="the recipe's batch size")
    parser.add_argument("--members", type=int, default=5, help="ensemble members for the ratio")
    parser.add_argument("--grid-runs", type=int, default=605, help="runs of the study (121 settings x 5 seeds)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("floor_results.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    variants = {f"batch {b}{' channels-last' if cl else ''}": (b, cl) for b in BATCHES for cl in (False, True)}
    fns = {}
    for name, (b, cl) in variants.items():
        run = step(b, cl)
        repeat = max(1, 2048 // b)  # each timed call does the same number of images
        fns[name] = (lambda run=run, repeat=repeat: [run() for _ in range(repeat)])
    seconds = measure(fns, args.rounds, torch.device("cpu"))
    per_image = {k: seconds[k] / (max(1, 2048 // variants[k][0]) * variants[k][0]) for k in variants}
    best = min(per_image, key=per_image.get)
    floor = per_image[best]
    recipe = min(per_image[f"batch {args.batch_size}"], per_image[f"batch {args.batch_size} channels-last"])
    images = args.images * args.epochs
    flops = flops_per_image()
    result = {
        **context(args.threads),
        "per_image_us": {k: round(v * 1e6, 2) for k, v in per_image.items()},
        "floor": best, "floor_per_image_us": round(floor * 1e6, 2),
        "flops_per_image": flops, "floor_gflops": round(flops / floor / 1e9, 1),
        "run_images": images,
        "floor_run_s": round(images * floor, 1),
        "recipe_batch_run_s": round(images * recipe, 1),
        "floor_ensemble_ratio": round(args.members * floor / recipe, 2),
        "floor_grid_hours": round(args.grid_runs * images * floor / 3600, 1),
        "members": args.members, "grid_runs": args.grid_runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
