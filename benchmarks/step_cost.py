"""Cost of attention extraction and alignment losses, as ratios to a baseline measured in the same run.

* training step with CAM-KL, CAMAL, Grad-CAM-KL (second order, and first order: alpha held
  constant), RRR, Expected-Gradients (one reference per image, RRR's penalty on its map) and CDEP
  (contextual decomposition) losses, and with mask-guided counterfactual augmentation, over a
  plain cross-entropy step;
* CAM and Grad-CAM extraction over a forward pass (both without a graph kept for training).

Measurements are interleaved (every round runs each variant once, in a shuffled order,
``--rounds`` times) and the median of each is reported, so machine-load drift and cache effects
hit every variant alike.

    python benchmarks/step_cost.py [--rounds 15] [--out benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from lookright.attention import create_extractor
from lookright.data.counterfactual import counterfactual
from lookright.losses import create_loss
from lookright.models import create_model
from timing import aligned_loss, ce_loss, measure, train_step  # benchmarks/ is on sys.path as a script

CDEP_MODELS = ("lenet",)  # contextual decomposition supports LeNet-GAP and CDEP's CNN
CASES = {
    "lenet": {"model": {"name": "lenet"}, "batch": 256, "size": 32},
    "resnet18": {"model": {"name": "resnet18", "num_classes": 10, "image_size": 224}, "batch": 16, "size": 224},
}


def make_case(name: str, device: torch.device):
    spec = CASES[name]
    torch.manual_seed(0)
    opts = {k: v for k, v in spec["model"].items() if k != "name"}
    model = create_model(spec["model"]["name"], **opts).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    b, s = spec["batch"], spec["size"]
    x = torch.randn(b, 3, s, s, device=device)
    y = torch.randint(0, 10, (b,), device=device)
    cam, gradcam, grads = create_extractor("cam"), create_extractor("gradcam"), create_extractor("input-gradients")
    gradcam_first = create_extractor("gradcam", second_order=False)
    grid = cam(model, x[:1], 0).shape[-2:]
    target = (torch.rand(b, *grid, device=device) > 0.6).float()
    target_in = (torch.rand(b, s, s, device=device) > 0.6).float()
    kl, rrr, camal, cdep = create_loss("kl"), create_loss("rrr"), create_loss("camal"), create_loss("cdep")
    eg = create_extractor("expected-gradients")
    mask_in = torch.zeros(b, 1, s, s, device=device)
    mask_in[:, :, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
    gen = torch.Generator().manual_seed(0)

    def step(loss_fn):
        return train_step(opt, loss_fn)

    def aligned(extractor, loss, target_map):
        return aligned_loss(model, x, y, extractor, loss, target_map)

    def counterfactual_ce():
        return F.cross_entropy(model(counterfactual(x, mask_in, "swap", gen)), y)

    def cdep_total():
        logits, penalty = cdep.model_loss(model, x, y, mask_in[:, 0])
        return F.cross_entropy(logits, y) + penalty.loss

    def forward():
        with torch.no_grad():
            model(x)

    steps = {
        "ce_step": step(ce_loss(model, x, y)),
        "cam_kl_step": step(aligned(cam, kl, target)),
        "gradcam_kl_step": step(aligned(gradcam, kl, target)),
        "gradcam_first_order_kl_step": step(aligned(gradcam_first, kl, target)),
        "camal_step": step(aligned(cam, camal, target)),
        "rrr_step": step(aligned(grads, rrr, target_in)),
        "counterfactual_step": step(counterfactual_ce),
        "expected_gradients_step": step(aligned(eg, rrr, target_in)),
    }
    if name in CDEP_MODELS:
        steps["cdep_step"] = step(cdep_total)
    extraction = {"forward": forward, "cam": lambda: cam(model, x, y), "gradcam": lambda: gradcam(model, x, y)}
    return steps, extraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else
              f"cpu {platform.machine()}, {torch.get_num_threads()} threads",
              "torch": torch.__version__, "rounds": args.rounds, "cases": {}}
    for name in args.cases:
        rounds = args.rounds if name == "lenet" else max(3, args.rounds // 3)
        steps, extraction = make_case(name, device)
        t_steps = measure(steps, rounds, device)
        t_extract = measure(extraction, rounds, device)
        case = {
            "batch": CASES[name]["batch"], "image": CASES[name]["size"],
            "ms": {k: round(v * 1e3, 3) for k, v in {**t_steps, **t_extract}.items()},
            "step_ratio_vs_ce": {k: round(v / t_steps["ce_step"], 3) for k, v in t_steps.items() if k != "ce_step"},
            "extract_ratio_vs_forward": {k: round(v / t_extract["forward"], 3)
                                         for k, v in t_extract.items() if k != "forward"},
        }
        report["cases"][name] = case
        print(json.dumps({name: case}, indent=2))
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
