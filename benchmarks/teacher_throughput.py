"""Pseudo-mask throughput of each dense-map method, and the cost of cache vs on-the-fly teaching.

1. Throughput (images/s, median of ``--rounds`` interleaved rounds) of ``gradcam``,
   ``maskclip`` and ``surgery`` including post-processing (Otsu), for the small CLIP in
   ``--clip`` (if given) and for a randomly initialised CLIP of ViT-B/16 size (OpenAI's
   architecture: 224 x 224, patch 16, width 768, 12 layers, 12 heads; text width 512, 12 layers),
   on 28 x 28 ColorMNIST-like inputs (3 channels), batch ``--batch``. Ratios are to ``maskclip``.
2. ``--modes``: wall time and peak resident memory of a short Learning to Look training run
   (embedded MNIST subset, ``--train-images`` digits, 2 epochs) with the pseudo-masks from the
   cache (filled beforehand: its time is reported apart) against computed inside the
   training loop (on-the-fly), each in a fresh subprocess. Ratios are to a run on ground-truth
   masks measured in the same invocation.

    python benchmarks/teacher_throughput.py --clip models/small-clip [--modes] [--out benchmarks/teacher_results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lookright.vlm.backends import load_clip
from lookright.vlm.teacher import VLMSettings, VLMTeacher
from random_clip import openai_sized_clip  # benchmarks/ is on sys.path when run as a script

METHODS = ("gradcam", "maskclip", "surgery")


def throughput(clip, batch: int, rounds: int) -> dict:
    images = torch.randint(0, 256, (batch, 3, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,))
    teachers = {m: VLMTeacher(VLMSettings(method=m, cache_dir=None), labels, clip=clip) for m in METHODS}
    idx = torch.arange(batch)
    for t in teachers.values():  # warm-up
        t(images[:2], idx[:2])
    times = {m: [] for m in METHODS}
    order = list(METHODS)
    for _ in range(rounds):
        random.shuffle(order)
        for m in order:
            start = time.perf_counter()
            teachers[m](images, idx)
            times[m].append(time.perf_counter() - start)
    ips = {m: batch / statistics.median(t) for m, t in times.items()}
    return {"images_per_second": ips, "ratio_to_maskclip": {m: ips[m] / ips["maskclip"] for m in ips}}


TRAIN_SNIPPET = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from lookright.train import load_config
from lookright.train.trainer import train
cfg = load_config("configs/colormnist-kl-vlm.yaml", sys.argv[2:])
start = time.perf_counter()
train(cfg, sys.argv[1], progress=False)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_mode(args: list[str], run_dir: str) -> dict:
    out = subprocess.run([sys.executable, "-c", TRAIN_SNIPPET, run_dir, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def modes(clip_path: str, n: int) -> dict:
    common = ["data.embedded=true", f"data.max_train={n}", "data.max_test=500", "train.epochs=2", "train.attn_epochs=1",
              f"target.vlm.path={clip_path}"]
    with tempfile.TemporaryDirectory() as tmp:
        gt = run_mode(common + ["target.teacher=mask"], f"{tmp}/gt")
        fill = run_mode(common + [f"target.vlm.cache_dir={tmp}/cache"], f"{tmp}/fill")
        cached = run_mode(common + [f"target.vlm.cache_dir={tmp}/cache"], f"{tmp}/cached")
        fly = run_mode(common + ["target.vlm.mode=on-the-fly", "target.vlm.cache_dir=null"], f"{tmp}/fly")
    return {"ground_truth": gt, "cache_first_run (fills the cache)": fill, "cache_hit": cached, "on_the_fly": fly,
            "time_ratio_to_ground_truth": {k: v["seconds"] / gt["seconds"] for k, v in
                                           (("cache_hit", cached), ("cache_fill", fill), ("on_the_fly", fly))},
            "setting": f"embedded MNIST, {n} training digits, 500 test, 2 epochs, 1 thread per run"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", help="small CLIP folder (Hugging Face format)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", action="store_true", help="also time cache vs on-the-fly training (needs --clip)")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--skip-vit-b16", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/teacher_results.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads, cpu",
              "batch": args.batch, "rounds": args.rounds, "input": "28x28 RGB, uint8"}
    if args.clip:
        result["small_clip"] = throughput(load_clip("hf", path=args.clip), args.batch, args.rounds)
    if not args.skip_vit_b16:
        result["vit_b16_random"] = throughput(openai_sized_clip(16, "random ViT-B/16"), max(1, args.batch // 4), max(1, args.rounds // 2))
    if args.modes:
        if not args.clip:
            parser.error("--modes needs --clip")
        result["modes"] = modes(args.clip, args.train_images)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
