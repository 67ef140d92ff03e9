"""Where a training run's time goes, stage by stage, for a real config on real data.

A step of phase 2 (``CE + lambda * align``) is cut into stages timed with ``perf_counter`` around
each (CPU work is synchronous; on a GPU each stage ends with a synchronise): forward with the CAM
hook, alignment targets (gather), loss (CE + KL), the per-step finiteness check (a host sync),
backward, optimiser step. A plain forward is timed against the forward with CAM extraction
(interleaved, median), and one whole step against its ``train.fast`` form (channels-last, fused
optimiser) and, with ``--compile``, its ``torch.compile`` form. Once-per-epoch work (validation
evaluation, shifted-test accuracy, checkpoint) and once-per-run work (attention mass,
input-gradient mass, figures) are timed as the trainer calls them (median of ``--rounds``). The JSON gives medians, the cost of one epoch and of
one run built from them, and each stage's share of the run.

    python benchmarks/profile_step.py [--config configs/colormnist-kl.yaml] [--steps 200] [--rounds 3]
        [--threads 1] [--compile] [--out benchmarks/profile_results.json] [KEY=VALUE ...]

The data are the embedded 5,000 digits unless an override says ``data.embedded=false``.
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import (  # benchmarks/ is on sys.path
    aligned_loss,
    context,
    measure,
    run_parser,
    sync,
    train_step,
)

from lookright.atomic import save_torch_atomic
from lookright.report.figures import save_run_figures
from lookright.runs.provenance import set_threads
from lookright.train import load_config
from lookright.train.schedules import alignment_weight, create_optimizer
from lookright.train.evaluation import attention_mass, evaluate, input_gradient_mass, test_accuracy
from lookright.train.trainer import build_parts, load_data

STAGES = ("forward_cam", "targets", "loss", "finite_check", "backward", "optimizer")


def setup(cfg):
    torch.manual_seed(cfg.seed)
    model, extractor, loss_fn, eval_extractor = build_parts(cfg)
    cfg, data = load_data(cfg, model, extractor, loss_fn, torch.device("cpu"))
    return cfg, model, extractor, loss_fn, eval_extractor, data


def staged_steps(cfg, model, extractor, loss_fn, batches, steps: int) -> dict[str, float]:
    """Median seconds of each stage over ``steps`` phase-2 steps (after 5 warm-up steps)."""
    device = torch.device("cpu")
    optimizer = create_optimizer(model.parameters(), cfg.optim)
    lam = alignment_weight(cfg.loss, cfg.train.attn_epochs, cfg.train.attn_epochs)
    perm = torch.randperm(len(batches), generator=torch.Generator().manual_seed(cfg.seed * 100_003))
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    it = iter(batches.batches(perm, cfg.train.batch_size, 0))
    for i in range(steps + 5):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(batches.batches(perm, cfg.train.batch_size, 0))
            batch = next(it)
        marks = [now(device)]
        maps, logits = extractor.with_logits(model, batch.x, batch.y, differentiable=True)
        marks.append(now(device))
        target = batch.targets()
        marks.append(now(device))
        loss = F.cross_entropy(logits, batch.y) + lam * loss_fn.evaluate(maps, target).loss
        marks.append(now(device))
        bool(torch.isfinite(loss))
        marks.append(now(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(now(device))
        optimizer.step()
        marks.append(now(device))
        if i >= 5:
            for k, a, b in zip(STAGES, marks[:-1], marks[1:], strict=True):
                times[k].append(b - a)
    return {k: statistics.median(v) for k, v in times.items()}


def step_variants(cfg, model, extractor, loss_fn, batches, rounds: int, compile_too: bool) -> dict[str, float]:
    """Median seconds of one whole step (CE + KL on CAM, backward, optimiser) on the same batch:
    the reference layout and optimiser, channels-last with a fused optimiser (``train.fast``),
    and (``--compile``) ``torch.compile`` of the loss on the reference layout."""
    batch = next(iter(batches.batches(torch.arange(len(batches)), cfg.train.batch_size, 0)))
    target = batch.targets()
    fns = {}
    for name in ("reference", "channels_last_fused", *(("compiled",) if compile_too else ())):
        m = copy.deepcopy(model)
        x = batch.x
        if name == "channels_last_fused":
            m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        loss = aligned_loss(m, x, batch.y, extractor, loss_fn, target)
        fns[name] = train_step(create_optimizer(m.parameters(), cfg.optim, fused=name == "channels_last_fused"),
                               torch.compile(loss) if name == "compiled" else loss)
    return measure(fns, rounds, torch.device("cpu"))


def now(device: torch.device) -> float:
    sync(device)
    return time.perf_counter()


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    parser = run_parser(__doc__, "profile_results.json", rounds=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd step (compiles first)")
    args = parser.parse_args()
    cfg = load_config(args.config, ["data.embedded=true", *args.overrides])
    set_threads(args.threads)
    ctx = context(args.threads)
    t0 = time.perf_counter()
    cfg, model, extractor, loss_fn, eval_extractor, data = setup(cfg)
    batches, va, te, pipeline = data.train, data.val, data.test, data.pipeline
    setup_s = time.perf_counter() - t0
    model.train()
    step = staged_steps(cfg, model, extractor, loss_fn, batches, args.steps)
    x = batches.data.x[: cfg.train.batch_size]
    y = batches.data.y[: cfg.train.batch_size]
    fwd = measure({"forward": lambda: model(x), "forward_cam": lambda: extractor.with_logits(model, x, y, True)},
                  max(11, args.steps // 10), torch.device("cpu"))
    variants = step_variants(cfg, model, extractor, loss_fn, batches, max(11, args.steps // 4), args.compile)
    bs_eval = cfg.train.eval_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "last.pt"
        epoch_work = {
            "val_evaluation": timed(lambda: evaluate(model, va, extractor, loss_fn, cfg), args.rounds),
            "test_accuracy": timed(lambda: test_accuracy(model, te, bs_eval), args.rounds),
            "checkpoint": timed(lambda: save_torch_atomic({"model": model.state_dict()}, ckpt), args.rounds),
        }
        model.train()
        history = [{"epoch": e, "train_ce": 1.0, "train_align": 0.5, "val_acc": 50.0, "test_acc": 40.0,
                    "val_align": 0.5, "val_loss": 1.0} for e in range(cfg.train.epochs)]
        metrics = {"dataset": cfg.data.name, "method": "kl", "seed": cfg.seed, "history": history}
        run_work = {
            "attention_mass": timed(lambda: attention_mass(model, te, eval_extractor, bs_eval), args.rounds),
            "input_gradient_mass": timed(lambda: input_gradient_mass(model, te, bs_eval), args.rounds),
            "figures": timed(lambda: save_run_figures(Path(tmp), model, te.head(cfg.eval.figure_images), eval_extractor,
                                                      pipeline, metrics, cfg.eval.figure_images), args.rounds),
        }
    steps = -(-len(batches) // cfg.train.batch_size)
    step_s = sum(step.values())
    epoch_s = steps * step_s + sum(epoch_work.values())
    run_s = cfg.train.epochs * epoch_s + sum(run_work.values()) + setup_s
    shares = {f"step.{k}": cfg.train.epochs * steps * v for k, v in step.items()}
    shares |= {f"epoch.{k}": cfg.train.epochs * v for k, v in epoch_work.items()}
    shares |= {f"run.{k}": v for k, v in run_work.items()} | {"run.setup_data": setup_s}
    report = {
        **ctx, "config": args.config, "batch_size": cfg.train.batch_size, "steps_per_epoch": steps,
        "sizes": {"train": len(batches), "val": len(va), "test": len(te)}, "epochs": cfg.train.epochs,
        "step_ms": {k: round(v * 1e3, 3) for k, v in step.items()} | {"total": round(step_s * 1e3, 3)},
        "forward_ms": {k: round(v * 1e3, 3) for k, v in fwd.items()},
        "cam_extraction_over_forward": round(fwd["forward_cam"] / fwd["forward"], 3),
        "whole_step_ms": {k: round(v * 1e3, 3) for k, v in variants.items()},
        "whole_step_ratio_to_reference": {k: round(v / variants["reference"], 3) for k, v in variants.items()},
        "epoch_s": {k: round(v, 4) for k, v in epoch_work.items()} | {"total": round(epoch_s, 3)},
        "run_s": {k: round(v, 4) for k, v in run_work.items()} | {"setup_data": round(setup_s, 3),
                                                                   "total": round(run_s, 2)},
        "share_of_run_pct": {k: round(100 * v / run_s, 2) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
