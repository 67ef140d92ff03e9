"""Cost of attention alignment on a library backbone at full resolution, and data decode throughput.

* training step (forward, backward, SGD step) of ``torchvision:resnet50`` (random init, 10
  classes) at 224 px, batch 16: plain cross-entropy (the baseline), CE + CAMAL on the CAM of the
  same forward pass, and CE + CAMAL on Grad-CAM (second order, and first order: alpha held
  constant), as ratios to the CE step with the targets (CAM <= 1.05x, Grad-CAM <= 1.10x);
* data throughput (images/s) of a generated manifest dataset (``write_example``) at the same
  size: the in-memory path's ``decode_records`` (its own thread pool, ``min(8, cpus)`` threads)
  and the streaming path's ``DataLoader`` over ``RecordDataset`` (batches of ``--batch``) with 0
  and 2 worker processes.

The step variants are interleaved (every round runs each once, in a shuffled order) and the
median is reported, so machine load hits every variant alike. Results are Markdown on stdout
and, with ``--out``, in a file.

    python benchmarks/backbone_step_cost.py [--size 224] [--batch 16] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from lookright.attention import create_extractor
from lookright.data.decode import decode_records
from lookright.data.example import write_example
from lookright.data.manifest import read_manifest
from lookright.data.stream import RecordDataset, StreamSplit, batch_loader
from lookright.losses import create_loss
from lookright.models import create_model
from timing import aligned_loss, ce_loss, measure, train_step  # benchmarks/ is on sys.path as a script

# variant -> (label, bar on the ratio to the CE step or None)
STEPS = {
    "ce": ("CE step (baseline)", None),
    "cam": ("CE + CAMAL on CAM", 1.05),
    "gradcam": ("CE + CAMAL on Grad-CAM (second order)", 1.10),
    "gradcam_first_order": ("CE + CAMAL on Grad-CAM (first order)", 1.10),
}


def step_times(arch: str, size: int, batch: int, rounds: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each training step in :data:`STEPS`."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, image_size=size).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    cam = create_extractor("cam")
    grid = cam(model, x[:1], 0).shape[-2:]
    target = (torch.rand(batch, *grid, device=device) > 0.6).float()
    camal = create_loss("camal")
    losses = {
        "ce": ce_loss(model, x, y),
        "cam": aligned_loss(model, x, y, cam, camal, target),
        "gradcam": aligned_loss(model, x, y, create_extractor("gradcam"), camal, target),
        "gradcam_first_order": aligned_loss(model, x, y, create_extractor("gradcam", second_order=False),
                                            camal, target),
    }
    return measure({k: train_step(opt, fn) for k, fn in losses.items()}, rounds, device, warmup=warmup)


def decode_throughput(n: int, size: int, rounds: int, batch: int) -> dict[str, float]:
    """Images per second on ``n`` generated ``size``-px images (with masks): in memory, and streamed."""
    with tempfile.TemporaryDirectory() as tmp:
        records = read_manifest(write_example(tmp, n=n, size=size))
        what = f"example {tmp}"
        split = StreamSplit(records, torch.zeros(len(records)).numpy(), size, 3, what)
        perm = torch.arange(len(records))

        def stream(workers: int):
            return lambda: [b for b in batch_loader(RecordDataset(split), perm, batch, workers, 0)]

        times = measure({"pool": lambda: decode_records(records, size, what), "stream0": stream(0),
                         "stream2": stream(2)}, rounds, torch.device("cpu"), warmup=1)
    return {k: len(records) / t for k, t in times.items()}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.machine()}, {torch.get_num_threads()} threads"


def markdown(args, device: torch.device, steps: dict[str, float], decode: dict[str, float] | None) -> str:
    base = steps["ce"]
    lines = [
        f"{args.arch}, random init, 10 classes, batch {args.batch}, {args.size}x{args.size}; "
        f"{machine(device)}, torch {torch.__version__}; median of {args.rounds} interleaved rounds "
        f"after {args.warmup} warm-up.",
        "",
        "| step | median | ratio to CE step | bar | met |",
        "|---|---|---|---|---|",
    ]
    for key, (label, bar) in STEPS.items():
        ratio = steps[key] / base
        lines.append(f"| {label} | {steps[key]:.3f} s | {ratio:.3f} | "
                     f"{f'<= {bar:.2f}' if bar else ''} | {('yes' if ratio <= bar else 'no') if bar else ''} |")
    if decode is not None:
        lines += [
            "",
            f"Data throughput, {args.images} generated {args.size}-px RGB images with masks "
            f"(`write_example`), median of {args.decode_rounds} rounds:",
            "",
            "| path | images/s |",
            "|---|---|",
            f"| in memory: `decode_records` (thread pool, min(8, cpus) threads) | {decode['pool']:.0f} |",
            f"| streamed: DataLoader over `RecordDataset`, batch {args.batch}, 0 workers | {decode['stream0']:.0f} |",
            f"| streamed: DataLoader over `RecordDataset`, batch {args.batch}, 2 workers | {decode['stream2']:.0f} |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="torchvision:resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--images", type=int, default=256, help="images decoded (0: skip the decode measurement)")
    parser.add_argument("--decode-rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = step_times(args.arch, args.size, args.batch, args.rounds, args.warmup, device)
    decode = decode_throughput(args.images, args.size, args.decode_rounds, args.batch) if args.images else None
    text = markdown(args, device, steps, decode)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
