"""Cost of the reliability study: evaluation throughput and tuning step time, LoRA vs full.

For the small CLIP in ``--clip`` and for a randomly initialised CLIP of ViT-B/32 size (OpenAI's
architecture: 224 x 224, patch 32, width 768, 12 layers; text width 512, 12 layers):

* evaluation throughput: image-caption pairs scored per second by both protocols together, the
  test set's embeddings computed once and shared (matching: true caption + 3 distractors + one
  conflicting caption per strategy = 8 pairs per image; classification: 5 captions per image
  through the head), and the share of that time spent embedding;
* tuning step time (median over steps after a warm-up) of LoRA (rank 8 on q/k/v/out of both
  towers) and of full fine-tuning, with the optimisation suite on, and the extra peak resident
  memory of the tuning (the process's high-water mark after tuning minus before, each mode in a
  fresh process); ratios are full / LoRA.

    python benchmarks/reliability_cost.py --clip models/small-clip [--out benchmarks/reliability_results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from random_clip import openai_sized_clip  # benchmarks/ is on sys.path when run as a script

STEP_SNIPPET = r"""
import json, resource, sys, statistics, time, torch
torch.set_num_threads(int(sys.argv[4]))
sys.path.insert(0, "benchmarks")
from reliability_cost import bundle, config
from lookright.vlm.reliability.run import build_splits
from lookright.vlm.reliability.tune import tune
clip = bundle(sys.argv[1])
cfg = config(sys.argv[1], sys.argv[2], int(sys.argv[3]))
train, _ = build_splits(cfg, clip)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
tuned = tune(clip, train, cfg, progress=False)
steps = len(train) // cfg.tune.batch_size
per_epoch = [h["seconds"] / steps for h in tuned.history]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"step_s": statistics.median(per_epoch[1:]), "extra_peak_rss_mb": (after - before) / 1024,
                  "trainable": tuned.trainable}))
"""


def bundle(which: str):
    from lookright.vlm.backends import load_clip

    return openai_sized_clip(32, "random ViT-B/32") if which == "vit-b32" else load_clip("hf", path=which)


def config(which: str, method: str, batch: int):
    from lookright.vlm.reliability.config import load_reliability_config

    big = which == "vit-b32"
    return load_reliability_config(Path("configs/vlm/shapes-lora-optimised.yaml"), [
        f"tune.method={method}", f"tune.batch_size={batch}", f"data.n_train={batch * (4 if big else 12)}",
        "tune.epochs=2" if big else "tune.epochs=3", f"data.image_size={224 if big else 28}", "figures=false"])


def eval_throughput(which: str, n: int, rounds: int) -> dict:
    """Image-caption pairs scored per second by the whole evaluation (embeddings computed once and
    shared: matching scores 8 pairs per image, classification 5), and by the embedding step alone."""
    from lookright.vlm.reliability.encoder import ClipEncoder
    from lookright.vlm.reliability.head import AttributeHead
    from lookright.vlm.reliability.protocols import classification, embed_set, matching
    from lookright.vlm.reliability.run import build_splits

    clip = bundle(which)
    base = config(which, "frozen", 64)
    cfg = base.model_copy(update={"data": base.data.model_copy(update={"n_test": n, "n_train": 16})})
    _, test = build_splits(cfg, clip)
    encoder = ClipEncoder(clip)
    head = AttributeHead(encoder.text(["a"]).shape[-1], {a: len(test.vocabulary(a)) for a in test.attributes})
    strategies = cfg.eval.strategies
    embed_set(encoder, test, strategies, 64)  # warm-up, fills the token cache
    total, embedding = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        emb = embed_set(encoder, test, strategies, 64)
        embedding.append(time.perf_counter() - start)
        matching(emb, strategies)
        classification(emb, head, test, strategies)
        total.append(time.perf_counter() - start)
    pairs = n * ((1 + cfg.eval.distractors + len(strategies)) + (1 + len(strategies)))
    return {"both_protocols": pairs / statistics.median(total), "embedding_share": statistics.median(embedding)
            / statistics.median(total), "pairs_per_image": pairs / n}


def step_cost(which: str, batch: int, threads: int) -> dict:
    out = {}
    for method in ("lora", "full"):
        res = subprocess.run([sys.executable, "-c", STEP_SNIPPET, which, method, str(batch), str(threads)],
                             capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        out[method] = json.loads(res.stdout.strip().splitlines()[-1])
    out["full_over_lora"] = {"step_time": out["full"]["step_s"] / out["lora"]["step_s"],
                             "extra_peak_rss": out["full"]["extra_peak_rss_mb"] / max(out["lora"]["extra_peak_rss_mb"], 1e-9)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="models/small-clip")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-vit-b32", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/reliability_results.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads, cpu"}
    models = [("small_clip", args.clip, 1000, 64)] + ([] if args.skip_vit_b32 else [("vit_b32_random", "vit-b32", 64, 16)])
    for key, which, n, batch in models:
        result[key] = {"eval_pairs_per_second": eval_throughput(which, n, args.rounds), "eval_images": n,
                       "tune_batch": batch, "tuning": step_cost(which, batch, args.threads)}
        print(json.dumps({key: result[key]}, indent=2), flush=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
