"""Re-evaluate a trained run folder from its config and best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lookright.errors import CheckpointError
from lookright.targets import MaskPipeline
from lookright.train.checkpoint import load_checkpoint
from lookright.train.config import load_config
from lookright.train.trainer import (
    BEST, LAST, attention_grid, attention_mass, build_parts, evaluate, extractor_from_config, load_splits,
    to_tensors, write_metrics,
)
from lookright.train.provenance import resolve_device


def evaluate_run(run_dir: str | Path, extractor: str | None = None) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    device = resolve_device(cfg.train.device)
    model, train_extractor, loss_fn, eval_extractor = build_parts(cfg)
    if extractor:
        eval_extractor = extractor_from_config(extractor, cfg)
    path = run_dir / BEST if (run_dir / BEST).is_file() else run_dir / LAST
    state = load_checkpoint(path)
    model.load_state_dict(state["model"] if "model" in state else state)
    model.to(device).eval()
    _, val_split, test_split, _ = load_splits(cfg)
    pipeline = MaskPipeline(cfg.target.pipeline) if loss_fn is not None else None
    x_probe = model.input_spec.prepare(torch.from_numpy(test_split.x[:2])).to(device)
    grid = attention_grid(model, train_extractor, x_probe) if train_extractor is not None else None
    va = to_tensors(val_split, model, device, cfg.target.source, pipeline, grid)
    te = to_tensors(test_split, model, device, cfg.target.source, pipeline, grid)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    val = evaluate(model, va, train_extractor, loss_fn, cfg)
    metrics.update({
        "val_acc": val["acc"], "val_align": val.get("align"),
        "shifted_test_acc": evaluate(model, te, None, None, cfg)["acc"],
        "attention_mass": attention_mass(model, te, eval_extractor, cfg.train.eval_batch_size),
        "eval_extractor": eval_extractor.name, "evaluated_checkpoint": path.name,
    })
    write_metrics(run_dir, metrics)
    return metrics
