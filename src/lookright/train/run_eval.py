"""Evaluate a trained run folder: every metric, written into its ``metrics.json``.

Adds to ``metrics.json``: ``val_acc``, ``shifted_test_acc`` with its Wilson 95% interval, and
``evaluations[EXTRACTOR]`` (localisation, shortcut mass, attention mass and faithfulness from
:mod:`lookright.metrics.suite`, with their settings), one entry per attention extractor evaluated.
The run's own extractor (the trainer's ``eval_extractor``) also fills ``evaluation`` and
``reliance`` (validation vs shifted-test accuracy and attention on the shortcut region); another
extractor (``--extractor``) never overwrites them, nor the trainer's ``attention_mass``. Writes
``eval/predictions.npz`` (labels and predictions on the shifted test split, for McNemar tests) and
``eval/examples.npz`` (``eval/examples-EXTRACTOR.npz`` for another extractor: the first test
images, masks and attention maps, for the report grid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookright.errors import CheckpointError
from lookright.metrics import accuracy, wilson
from lookright.metrics.suite import attention_suite
from lookright.targets import MaskPipeline
from lookright.atomic import write_file_atomic
from lookright.runs.folder import RunFolder
from lookright.runs.provenance import resolve_device
from lookright.train.checkpoint import load_checkpoint, load_weights
from lookright.train.config import load_config
from lookright.data.sources import decoded_split
from lookright.data.stream import StreamSplit, first_images
from lookright.train.evaluation import EvalSet, attention_mass, evaluate, predictions
from lookright.train.trainer import BEST, LAST, attention_grid, build_parts, extractor_from_config, load_splits

EVAL_DIR = "eval"


def load_run_model(run_dir: Path, cfg):
    """The run's model with its selected (best, else last) weights, in eval mode on the run's device."""
    path = run_dir / BEST if (run_dir / BEST).is_file() else run_dir / LAST
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} has no checkpoint ({BEST} or {LAST}); the run never finished an epoch. "
            f"Train it with `lookright train {run_dir / 'config.yaml'} --run-dir {run_dir}`")
    state = load_checkpoint(path)
    model, train_extractor, loss_fn, eval_extractor = build_parts(cfg)
    load_weights(model, state, path)
    return model.to(resolve_device(cfg.train.device)).eval(), train_extractor, loss_fn, eval_extractor, path


def load_finished_run(run_dir: str | Path, device: str | None = None):
    """A finished supervised run as :class:`lookright.runs.folder.LoadedRun` (config, metrics, model)."""
    from lookright.runs.folder import LoadedRun

    folder = RunFolder(run_dir)
    folder.require_finished("supervised")
    cfg = load_config(folder.path / "config.yaml", [f"train.device={device}"] if device else [])
    return LoadedRun("supervised", folder.path, cfg, folder.metrics(), load_run_model(folder.path, cfg)[0])


def evaluate_run(run_dir: str | Path, extractor: str | None = None, overrides: list[str] | None = None) -> dict:
    """Compute every metric for the run in ``run_dir``; ``overrides`` are ``eval.*=value`` settings."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run folder (no config.yaml); pass a folder written by "
                              "`lookright train` or `lookright sweep`")
    folder = RunFolder(run_dir)
    kind = (folder.info() or {}).get("kind", "supervised")
    if kind != "supervised":
        raise CheckpointError(f"{run_dir} holds a {kind} run; `lookright eval` evaluates supervised runs"
                              + (" (use `lookright rl eval`)" if kind == "rl" else ""))
    folder.check_config_file()
    with folder.finished_for_update("evaluate") as metrics:
        return _evaluate(run_dir, metrics, extractor, overrides)


def _evaluate(run_dir: Path, metrics: dict, extractor: str | None, overrides: list[str] | None) -> dict:
    cfg = load_config(run_dir / "config.yaml", list(overrides or []))
    model, train_extractor, loss_fn, eval_extractor, path = load_run_model(run_dir, cfg)
    if extractor:
        eval_extractor = extractor_from_config(extractor, cfg)
    device = next(model.parameters()).device
    _, val_split, test_split, source = load_splits(cfg)
    cfg = cfg.for_dataset(source)
    if isinstance(test_split, StreamSplit):  # the attention suite reads the shifted test split at random
        test_split = decoded_split(test_split)
    pipeline = MaskPipeline(cfg.target.pipeline) if loss_fn is not None else None
    x_probe = model.input_spec.prepare(first_images(test_split, 2)).to(device)
    grid = attention_grid(model, train_extractor, x_probe) if train_extractor is not None else None
    va = EvalSet(val_split, model, device, cfg, pipeline, grid, "val")
    te_set = EvalSet(test_split, model, device, cfg, pipeline, grid, "test")
    te = te_set.tensors
    bs = cfg.train.eval_batch_size

    val = evaluate(model, va, train_extractor, loss_fn, cfg)
    pred = predictions(model, te_set, bs)
    correct = int((pred == te.y).sum())
    low, high = wilson(correct, len(te.y))
    suite = attention_suite(model, te.x, te.y, te.mask, te.shortcut, eval_extractor, cfg.eval, bs, cfg.seed)
    per_image = suite.pop("_per_image")
    shifted = accuracy(pred, te.y)

    own = eval_extractor.name == metrics.get("eval_extractor", eval_extractor.name)
    folder = run_dir / EVAL_DIR
    labels = {"y": te.y.cpu().numpy().astype(np.int16), "pred": pred.cpu().numpy().astype(np.int16)}
    write_file_atomic(folder / "predictions.npz", lambda f: np.savez_compressed(f, **labels))
    k = len(per_image["maps"])
    examples = {"x": test_split.x[:k], "y": test_split.y[:k], "mask": test_split.mask[:k],
                "shortcut": test_split.shortcut[:k], "maps": per_image["maps"]}
    examples_file = f"{EVAL_DIR}/examples{'' if own else '-' + eval_extractor.name}.npz"
    write_file_atomic(run_dir / examples_file, lambda f: np.savez_compressed(f, **examples))

    evaluation = {"extractor": eval_extractor.name, "split": "shifted test", "settings": cfg.eval.model_dump(),
                  **suite, "attention_mass": attention_mass(model, te_set, eval_extractor, bs), "examples": examples_file}
    metrics.update({
        "val_acc": val["acc"], "val_align": val.get("align"),
        "shifted_test_acc": shifted, "shifted_test_acc_wilson95": [100 * low, 100 * high],
        # the latest evaluation last (lookright eval prints it)
        "evaluations": {**{k: v for k, v in metrics.get("evaluations", {}).items() if k != eval_extractor.name},
                        eval_extractor.name: evaluation},
        "evaluated_checkpoint": path.name,
    })
    if own:
        metrics["evaluation"] = evaluation
        metrics["reliance"] = {"val_acc": val["acc"], "shifted_test_acc": shifted, "gap": val["acc"] - shifted,
                               "attention_on_shortcut": suite["shortcut_mass"]["mean"]}
    return metrics
