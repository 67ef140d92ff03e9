"""lookright's metrics against Quantus on the same inputs: agreement and speed.

    python benchmarks/quantus_compare.py [--repeats 3] [--out benchmarks/quantus_results.json]

Needs ``pip install quantus`` (``pip install -e .[bench]``). Inputs: random continuous attention
(no ties, so pixel order is unambiguous), random masks covering about 30% of the image, and a
randomly initialised model (LeNet-GAP at 28x28, ResNet-18 at 224x224; weights do not matter for
agreement or speed). Cases: batch 256 of 28x28 and batch 32 of 224x224.

Conventions aligned for the comparison (each documented in lookright's docstrings):

* pointing game: both score a hit if any maximal pixel is in the mask (lookright, tolerance 0);
  lookright additionally marks constant maps undefined (none occur here).
* relevance mass accuracy: Quantus normalises the map by its max |a| first; the ratio is
  unchanged, so values agree.
* pixel flipping: Quantus flips single values of (C, H, W); the inputs here are greyscale
  (the model repeats the channel to RGB), so a value is a pixel. Quantus removes
  ``features_in_step`` pixels per step and records the softmax
  probability after each step; lookright's deletion curve with ``steps = H*W / features_in_step``
  and substrate 0 gives the same curve plus the unperturbed point at index 0.

Timings: best of ``--repeats`` after one warm-up, both sides on the CPU in the same process;
the ratio is Quantus time / lookright time.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from lookright.metrics import perturbation_curve, pointing_game, relevance_mass_accuracy
from lookright.models import create_model


class GreyToRGB(torch.nn.Module):
    def forward(self, x):
        return x.expand(-1, 3, -1, -1)


def best_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def make_case(batch: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if size == 28:
        net = create_model("lenet")
    else:
        import torchvision

        net = torchvision.models.resnet18(weights=None, num_classes=10)
    model = torch.nn.Sequential(GreyToRGB(), net).eval()
    x = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
    a = torch.rand(batch, size, size, generator=g)
    # smooth-ish masks: random rectangles covering about 30%
    m = torch.zeros(batch, size, size)
    side = int(size * 0.55)
    for i in range(batch):
        r, c = torch.randint(0, size - side, (2,), generator=g).tolist()
        m[i, r : r + side, c : c + side] = 1
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, a, m, y


def compare_case(batch: int, size: int, repeats: int, steps: int) -> dict:
    import quantus

    model, x, a, m, y = make_case(batch, size)
    xn, an, mn, yn = x.numpy(), a[:, None].numpy(), m[:, None].numpy(), y.numpy()
    results = {"batch": batch, "size": size}

    # pointing game and relevance mass: no model involved
    q_pg = quantus.PointingGame(disable_warnings=True)
    q_rm = quantus.RelevanceMassAccuracy(disable_warnings=True)
    for name, q_metric, ours in (("pointing_game", q_pg, pointing_game),
                                 ("relevance_mass_accuracy", q_rm, relevance_mass_accuracy)):
        tq, q_vals = best_time(lambda q_metric=q_metric: q_metric(model=None, x_batch=xn, y_batch=yn, a_batch=an,
                                                                  s_batch=mn, device="cpu", batch_size=batch), repeats)
        to, (o_vals, _) = best_time(lambda ours=ours: ours(a, m), repeats)
        diff = float(np.max(np.abs(np.asarray(q_vals, dtype=float) - o_vals.numpy())))
        results[name] = {"quantus_s": tq, "lookright_s": to, "speedup": tq / to, "max_abs_diff": diff,
                         "mean_quantus": float(np.mean(q_vals)), "mean_lookright": float(o_vals.mean())}

    # pixel flipping vs deletion curve
    n = size * size
    per_step = n // steps
    q_pf = quantus.PixelFlipping(features_in_step=per_step, perturb_baseline=0.0, disable_warnings=True,
                                 normalise=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq, q_curve = best_time(lambda: q_pf(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                                             softmax=True, batch_size=batch), repeats)
    with torch.no_grad():
        to, o_curve = best_time(lambda: perturbation_curve(model, x, a, y, steps=steps, substrate=0.0,
                                                           batch_size=4096), repeats)
    q_curve = np.asarray(q_curve, dtype=float)
    diff = float(np.max(np.abs(q_curve - o_curve[:, 1:].numpy())))
    results["pixel_flipping"] = {"quantus_s": tq, "lookright_s": to, "speedup": tq / to, "max_abs_diff": diff,
                                 "steps": steps, "pixels_per_step": per_step}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quantus_results.json"))
    args = parser.parse_args()
    import quantus

    torch.manual_seed(0)
    cases = [compare_case(256, 28, args.repeats, steps=16), compare_case(32, 224, args.repeats, steps=16)]
    report = {"quantus": quantus.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cases": cases}
    args.out.write_text(json.dumps(report, indent=2))
    for case in cases:
        print(f"batch {case['batch']} of {case['size']}x{case['size']}:")
        for name in ("pointing_game", "relevance_mass_accuracy", "pixel_flipping"):
            r = case[name]
            print(f"  {name:24s} quantus {r['quantus_s'] * 1e3:9.1f} ms  lookright {r['lookright_s'] * 1e3:8.2f} ms"
                  f"  speed-up {r['speedup']:7.1f}x  max |diff| {r['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
