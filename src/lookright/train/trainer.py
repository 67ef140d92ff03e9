"""The training loop, top to bottom.

Two phases (Learning to Look): for ``attn_epochs`` epochs one loss alone is optimised (the
alignment loss, unscaled, by default; ``train.phase1_loss: ce`` for cross-entropy, as some
published scripts do); then the optimiser and scheduler are created anew and
``CE + lambda(e) * align`` is optimised. Vanilla training is ``loss.name = null`` and ``attn_epochs = 0``.

Batches are index slices of a permutation drawn from a generator seeded by ``(seed, epoch)``,
taken from splits held on the device or decoded per batch (:mod:`lookright.train.batches`,
metrics in :mod:`lookright.train.evaluation`), so a resumed run replays exactly the batches of
an uninterrupted one; on several devices each process takes its part of every slice
(:mod:`lookright.train.fabric`). A checkpoint is written atomically after every epoch. The run folder
follows :mod:`lookright.runs.folder`: locked while training, refused when it holds another config,
``metrics.json`` written only when the run finishes. A NaN or infinite loss stops the run at that
step (TrainingDiverged; with ``train.fast`` within the :data:`~lookright.train.fast.CHECK_EVERY`
steps after it).
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning_fabric import Fabric
from torch import nn

from lookright.attention import Extractor, cam_unsupported, create_extractor_from
from lookright.data import create_benchmark, load_embedded, load_mnist, split_validation
from lookright.data.benchmark import DataSource, Split
from lookright.data.counterfactual import counterfactual
from lookright.data.sources import USER_SOURCES, load_user_splits
from lookright.data.stream import StreamSplit, first_images
from lookright.errors import ConfigError, RunError, TrainingDiverged
from lookright.losses import AlignmentLoss, create_loss
from lookright.models import create_model
from lookright.report.figures import attention_grid_figure, figure_pixels, save_run_figures
from lookright.targets import MaskPipeline
from lookright.atomic import save_torch_atomic
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder
from lookright.runs.loggers import Loggers
from lookright.runs.progress import progress_bar
from lookright.runs.provenance import provenance, resolve_device, set_threads
from lookright.train.batches import StreamBatches, TensorBatches, to_tensors
from lookright.train.checkpoint import load_checkpoint, load_weights
from lookright.train.config import FINGERPRINT_IGNORES, RunConfig
from lookright.train.evaluation import (
    EvalSet, alignment_step, attention_mass, evaluate, input_gradient_mass, selection_score, test_accuracy,
)
from lookright.train.fast import channels_last, check_due, sums_diverged
from lookright.train.fabric import (
    check_accelerator, create_fabric, load_precision_state, precision_state, setup_model, setup_optimizer,
)
from lookright.train.schedules import alignment_weight

LAST = "checkpoints/last.pt"
BEST = "checkpoints/best.pt"


def load_splits(cfg: RunConfig) -> tuple[Split | StreamSplit, Split | StreamSplit, Split | StreamSplit, DataSource]:
    """Load a user dataset (manifest, folder, npz) or generate the benchmark; carve train /
    validation / test (shifted) splits; user data's splits are :class:`StreamSplit` s when ``data.stream`` says so."""
    d = cfg.data
    if d.name in USER_SOURCES:
        train, val, test, source = load_user_splits(d, cfg.seed, False if cfg.target.teacher == "vlm" else d.stream)
        n_classes, wanted = int(train.y.max()) + 1, cfg.model.options.get("num_classes", 10)
        if n_classes > wanted:
            raise ConfigError(f"{source}: {n_classes} classes but the model has {wanted} outputs; "
                              f"set model.options.num_classes: {n_classes}")
        return train, val, test, source
    mnist = load_embedded() if d.embedded else load_mnist(d.data_dir)
    bench = create_benchmark(d.name, seed=cfg.seed, mnist=mnist, mask_threshold=d.mask_threshold)
    train, test = bench.train, bench.test
    grey = mnist.train_images
    if d.max_train:
        train, grey = train.take(np.arange(min(d.max_train, len(train)))), grey[: d.max_train]
    if d.max_test:
        test = test.take(np.arange(min(d.max_test, len(test))))
    bench.train = train
    train, val = split_validation(bench, d.val_fraction, d.val_mode, cfg.seed, mnist_grey=grey)
    return train, val, test, DataSource(bench.source)


def build_parts(cfg: RunConfig) -> tuple[nn.Module, Extractor | None, AlignmentLoss | None, Extractor]:
    """Model, training extractor and loss (None for vanilla), and the evaluation extractor.

    Unset extractors default to CAM where it applies to the model and to Grad-CAM where it
    does not (a ViT, a head with a norm or hidden layer); CAM asked for by name on such a model
    is a ConfigError that names the key and says why.
    """
    model = create_model(cfg.model.name, **cfg.model.options)
    if cfg.model.input_scale == "raw":
        model.input_spec = replace(model.input_spec, mean=0.0, std=1.0 / 255.0)
    loss_fn = create_loss(cfg.loss.name, **cfg.loss.options) if cfg.loss.name else None
    extractor = None
    if loss_fn is not None and not loss_fn.needs_model:
        name = extractor_name(model, cfg, "attention.extractor", cfg.attention.extractor, loss_fn.default_extractor)
        extractor = extractor_from_config(name, cfg, training=True)
    eval_name = extractor_name(model, cfg, "eval.extractor", cfg.eval.extractor, "cam")
    return model, extractor, loss_fn, extractor_from_config(eval_name, cfg)


def extractor_name(model: nn.Module, cfg: RunConfig, key: str, chosen: str | None, default: str) -> str:
    """``chosen``, else ``default`` with CAM replaced by Grad-CAM where CAM does not apply."""
    reason = cam_unsupported(model)
    if chosen is None:
        return "gradcam" if default.startswith("cam") and reason else default
    if chosen.startswith("cam") and reason:
        raise ConfigError(f"{key}: {chosen} does not apply to model {cfg.model.name}: {reason}; use gradcam")
    return chosen


def extractor_from_config(name: str, cfg: RunConfig, training: bool = False) -> Extractor:
    """Extractor ``name`` with the ``attention`` section's settings that apply to it
    (``attention.options`` go to the training extractor only)."""
    shared = cfg.attention.model_dump(include={"layer", "post_relu", "second_order"})
    return create_extractor_from(name, shared, cfg.attention.options if training else None)


def attention_grid(model: nn.Module, extractor: Extractor, x: torch.Tensor) -> tuple[int, int]:
    was_training = model.training
    model.eval()
    maps = extractor(model, x[:2], None)
    model.train(was_training)
    return tuple(maps.shape[-2:])


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    on_epoch=None,
) -> dict:
    """Train one run into ``run_dir``; return its metrics (also written to ``metrics.json``).

    ``stop_after_epoch`` returns early after that epoch's checkpoint, as if the run had been
    interrupted there (used to test ``resume``). ``on_epoch(record)`` is called with each epoch's
    history record once its checkpoint is written (a scheduler such as ASHA may stop the run there:
    it stays interrupted, never finished). With ``train.devices > 1`` the epochs run in that many
    processes (:mod:`lookright.train.fabric`) while this one holds the run folder.
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    # every check that can fail on the config runs before the folder is touched
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    check_accelerator(cfg, device)
    if on_epoch is not None and cfg.train.devices > 1:
        raise ConfigError(f"train.devices={cfg.train.devices}: a run on several devices cannot report each epoch to a "
                          "scheduler; run it without one (no --scheduler asha)")
    torch.manual_seed(cfg.seed)  # the model's initialisation; building it also validates every name
    parts = build_parts(cfg)
    folder = RunFolder(run_dir)
    if resume and folder.state() == "new":
        raise RunError(f"{run_dir} holds no run to resume; start it without --resume")
    found = folder.open("supervised", config_tree(cfg), dump_config(cfg), FINGERPRINT_IGNORES, resume=resume)
    with folder.guard():
        fabric = create_fabric(cfg, device)
        if fabric.world_size == 1:
            out = run_epochs(fabric, cfg, run_dir, found, parts, progress, stop_after_epoch, started, on_epoch)
        else:
            out = launch_ranks(fabric, cfg, run_dir, found, progress, stop_after_epoch, started)
        if "interrupted_after_epoch" in out:
            return out
        return folder.finish(out, provenance(device))


def launch_ranks(fabric: Fabric, *args) -> dict:
    """:func:`run_rank` in ``fabric.world_size`` spawned processes; rank 0's result. A process that
    fails or dies is a RunError naming its cause (the others are stopped by torch)."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    try:
        return fabric.launch(run_rank, *args)
    except ProcessRaisedException as exc:
        cause = str(exc).strip().splitlines()[-1]
        raise RunError(f"a process of the {fabric.world_size}-device run failed: {cause}") from None
    except ProcessExitedException as exc:
        raise RunError(f"a process of the {fabric.world_size}-device run exited ({exc}); its error is printed above. "
                       "A script that calls lookright's train() on several devices must run it under "
                       "`if __name__ == \"__main__\":` (processes are spawned and import the script)") from None


def run_rank(fabric: Fabric, cfg: RunConfig, run_dir: Path, found: str, progress: bool, stop_after_epoch: int | None,
             started: float) -> dict:
    """One process of a multi-device run: the same model (same seed), its shard of every batch."""
    set_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    parts = build_parts(cfg)
    return run_epochs(fabric, cfg, run_dir, found, parts, progress and fabric.global_rank == 0, stop_after_epoch, started)


def run_epochs(fabric: Fabric, cfg: RunConfig, run_dir: Path, found: str, parts: tuple, progress: bool,
               stop_after_epoch: int | None, started: float, on_epoch=None) -> dict:
    """The epochs of a run (resumed from its last checkpoint when ``found`` is not new), then the
    final metrics; or ``{"interrupted_after_epoch": k}``. Every process of a multi-device run
    evaluates the full validation and test splits (identical weights give identical decisions);
    only the first writes files."""
    writer = fabric.global_rank == 0
    device = fabric.device
    state = load_checkpoint(run_dir / LAST) if found != "new" and (run_dir / LAST).is_file() else None

    model, extractor, loss_fn, _eval_extractor = parts
    model.to(device)
    if cfg.train.fast:  # before Fabric (DDP) wraps its parameters
        channels_last(model)
    # Fabric runs the training step; checkpoints and evaluation keep the plain model, and the
    # extractors hook its submodules (through the DDP wrapper on several devices, so that
    # gradients are averaged across processes)
    step_model = setup_model(fabric, model, cfg.train.compile)
    align_model = model if fabric.world_size == 1 else step_model
    cfg, data = load_data(cfg, model, extractor, loss_fn, device)
    tr = data.train
    shard = (fabric.global_rank, fabric.world_size)

    epochs, attn_epochs = cfg.train.epochs, cfg.train.attn_epochs
    phase_len = attn_epochs if attn_epochs else epochs
    optimizer, scheduler = setup_optimizer(fabric, model, cfg, phase_len)
    history: list[dict] = []
    best = {"score": None, "epoch": None}
    start_epoch = 0
    if state is not None:
        load_weights(model, state, run_dir / LAST)
        # at epoch == attn_epochs phase 2 starts with a fresh optimiser (created in the loop)
        if not (attn_epochs and state["epoch"] == attn_epochs):
            length = epochs - attn_epochs if attn_epochs and state["epoch"] > attn_epochs else phase_len
            optimizer, scheduler = setup_optimizer(fabric, model, cfg, length, state)
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        torch.set_rng_state(state["rng"])
        load_precision_state(fabric, state)

    prior_elapsed = state.get("elapsed", 0.0) if state is not None else 0.0
    n = len(tr)
    bs = cfg.train.batch_size
    steps = batch_count(n, bs, fabric.world_size)
    model.train()
    loggers = Loggers(cfg.log.backends if writer else [], run_dir, cfg.name, config_tree(cfg), start_epoch)
    with progress_bar(enabled=progress) as bar, closing(loggers):
        task = bar.add_task(cfg.name, total=(epochs - start_epoch) * steps)
        for epoch in range(start_epoch, epochs):
            if attn_epochs and epoch == attn_epochs:
                optimizer, scheduler = setup_optimizer(fabric, model, cfg, epochs - attn_epochs)
            attention_only = epoch < attn_epochs
            # the attention map is extracted only when the alignment loss enters this phase's objective
            use_align = loss_fn is not None and not (attention_only and cfg.train.phase1_loss == "ce")
            lam = alignment_weight(cfg.loss, epoch, attn_epochs)
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            perm = torch.randperm(n, generator=gen)
            cf_gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 50_000 + 7_919 * shard[0])
            sums = {"ce": torch.zeros((), device=device), "align": torch.zeros((), device=device)}
            for step, batch in enumerate(tr.batches(perm, bs, epoch, shard)):
                x, y = batch.x, batch.y
                if cfg.train.fast:  # a gather comes back NCHW
                    x = x.contiguous(memory_format=torch.channels_last)
                if cfg.augment.counterfactual > 0:
                    x = augment_batch(x, batch.input_mask, cfg.augment, cf_gen)
                if not use_align:
                    logits = step_model(x)
                    align = None
                else:
                    with fabric.autocast():
                        logits, (align, _valid) = alignment_step(align_model, extractor, loss_fn, x, y,
                                                                 batch.targets(), cfg.attention.target)
                ce = F.cross_entropy(logits.float(), y)
                if attention_only:
                    loss = align if cfg.train.phase1_loss == "align" else ce
                else:
                    loss = ce if align is None else ce + lam * align
                if fabric.world_size > 1:  # DDP expects every output of the forward in the loss
                    loss = loss + 0.0 * logits.float().sum()
                if not cfg.train.fast and not all_finite(fabric, loss):  # the fast path checks the sums below
                    raise diverged(cfg, epoch, step, ce, align, lam)
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(loss)
                optimizer.step()
                sums["ce"] += ce.detach()
                if align is not None:
                    sums["align"] += align.detach()
                bar.advance(task)
                if cfg.train.fast and check_due(step, steps) and not all_finite(fabric, sums["ce"] + sums["align"]):
                    raise sums_diverged(f"{cfg.name} seed {cfg.seed}", epoch, step, sums)
            if fabric.world_size > 1:  # the epoch's mean over every process's shards
                sums = {k: fabric.all_reduce(v, reduce_op="mean") for k, v in sums.items()}
            record, best = end_epoch(cfg, parts, data, run_dir, optimizer, scheduler, epoch, lam, sums, steps, use_align,
                                     history, best, loggers, lambda: prior_elapsed + time.perf_counter() - started,
                                     writer, precision_state(fabric), bar.console if progress else None)
            fabric.barrier()  # the checkpoints are on disk before any process reads or ends
            if on_epoch is not None:
                on_epoch(record)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
                return {"interrupted_after_epoch": epoch + 1}
            if patience_exhausted(cfg, epoch, best):
                break

    elapsed = prior_elapsed + time.perf_counter() - started
    return final_metrics(cfg, run_dir, parts, data, history, best, elapsed, device, fabric.world_size, writer)


@dataclass
class RunData:
    """A run's data on the device: train batches, validation and shifted-test sets, the target
    pipeline and the data source."""

    train: TensorBatches | StreamBatches
    val: EvalSet
    test: EvalSet
    pipeline: MaskPipeline | None
    source: DataSource


def load_data(cfg: RunConfig, model: nn.Module, extractor, loss_fn, device) -> tuple[RunConfig, RunData]:
    """Load the splits and put them on ``device`` with their alignment targets; returns the config
    resolved for the dataset (:meth:`RunConfig.for_dataset`) and the data (``train.fast``: the
    in-memory evaluation splits in channels-last layout)."""
    train_split, val_split, test_split, source = load_splits(cfg)
    cfg = cfg.for_dataset(source)
    pipeline = MaskPipeline(cfg.target.pipeline) if loss_fn is not None else None
    x_probe = model.input_spec.prepare(first_images(val_split, 2)).to(device)
    grid = attention_grid(model, extractor, x_probe) if extractor is not None else None
    if loss_fn is not None and loss_fn.needs_model:
        grid = tuple(x_probe.shape[-2:])  # its region lives at the model input's resolution
    clip = None
    if cfg.target.teacher == "vlm":
        clip = cfg.target.vlm.clip_loader()  # loaded when a split's masks are not in the cache
    tr = (StreamBatches(train_split, model, device, cfg, pipeline, grid) if isinstance(train_split, StreamSplit)
          else TensorBatches(to_tensors(train_split, model, device, cfg, pipeline, grid, "train", clip), pipeline, grid))
    va, te = (EvalSet(s, model, device, cfg, pipeline, grid, name, clip) for s, name in ((val_split, "val"), (test_split, "test")))
    if cfg.train.fast:
        channels_last(None, va.tensors, te.tensors)
    return cfg, RunData(tr, va, te, pipeline, source)


def end_epoch(cfg: RunConfig, parts: tuple, data: RunData, run_dir: Path, optimizer, scheduler, epoch: int, lam: float,
              sums: dict, steps: int, use_align: bool, history: list, best: dict, loggers: Loggers, elapsed,
              writer: bool = True, precision: dict | None = None, console=None) -> tuple[dict, dict]:
    """After an epoch's steps: step the scheduler, evaluate validation and shifted test, append the
    epoch's record to ``history``, keep the selected weights (best.pt) and write the checkpoint
    (last.pt; both only when ``writer``). ``elapsed()`` gives the run's seconds so far; ``precision``
    is the precision plugin's state. Returns ``(record, best)``."""
    model, extractor, loss_fn, eval_extractor = parts
    va, te = data.val, data.test
    lr_used = optimizer.param_groups[0]["lr"]
    scheduler.step()
    val = evaluate(model, va, extractor, loss_fn, cfg)
    test_acc = test_accuracy(model, te, cfg.train.eval_batch_size)
    record = {
        "epoch": epoch, "phase": 1 if epoch < cfg.train.attn_epochs else 2, "lambda": lam,
        "lr": lr_used,
        "train_ce": float(sums["ce"]) / steps, "train_align": float(sums["align"]) / steps if use_align else None,
        "val_acc": val["acc"], "val_loss": val["loss"], "val_align": val.get("align"),
        "val_cf_acc": val["counterfactual"]["acc"], "val_cf_consistency": val["counterfactual"]["consistency"],
        "test_acc": test_acc,
    }
    history.append(record)
    log_epoch(loggers, cfg, record, model, te, eval_extractor, data.pipeline)
    score = selection_score(cfg, epoch, val)
    if score is not None and (best["score"] is None or score > best["score"]):
        best = {"score": score, "epoch": epoch}
        if writer:
            save_torch_atomic({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, run_dir / BEST)
    if console is not None:
        align_note = f", val align {val['align']:.4f}" if val.get("align") is not None else ""
        shifted = f", shifted test {test_acc:.2f}%" if cfg.log.show_test else ""  # no peeking unless asked
        console.log(f"{cfg.name} epoch {epoch + 1}/{cfg.train.epochs}: val {val['acc']:.2f}%{shifted}{align_note}")
    if writer:
        save_torch_atomic({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
            "best": best, "rng": torch.get_rng_state(), "precision": precision or {}, "elapsed": elapsed(),
        }, run_dir / LAST)
    return record, best


def final_metrics(cfg: RunConfig, run_dir: Path, parts: tuple, data: RunData, history: list, best: dict,
                  elapsed: float, device, devices: int = 1, writer: bool = True) -> dict:
    """Reload the selected weights and measure the run's final metrics; write its figures (``writer``)."""
    model, extractor, loss_fn, eval_extractor = parts
    tr, va, te = data.train, data.val, data.test
    if best["epoch"] is not None:
        model.load_state_dict(torch.load(run_dir / BEST, map_location=device, weights_only=True))
    final_val = evaluate(model, va, extractor, loss_fn, cfg)
    model.eval()
    metrics = {
        "name": cfg.name, "dataset": cfg.data.name, "data_source": str(data.source), "method": method_name(cfg),
        "model": cfg.model.name, "seed": cfg.seed,
        "selected_epoch": best["epoch"], "selection": cfg.train.selection,
        "shifted_test_acc": test_accuracy(model, te, cfg.train.eval_batch_size),
        "val_acc": final_val["acc"], "val_loss": final_val["loss"], "val_align": final_val.get("align"),
        "val_counterfactual_acc": final_val["counterfactual"]["acc"],
        "val_counterfactual_consistency": final_val["counterfactual"]["consistency"],
        "epochs_run": len(history),
        "attention_mass": attention_mass(model, te, eval_extractor, cfg.train.eval_batch_size),
        "input_gradient_mass": input_gradient_mass(model, te, cfg.train.eval_batch_size),
        "eval_extractor": eval_extractor.name, "precision": cfg.train.precision, "devices": devices,
        "sizes": {"train": len(tr), "val": len(va), "test": len(te)},
        "history": history, "wall_time_s": round(elapsed, 2),
    }
    if writer:
        save_run_figures(run_dir, model, te.head(cfg.eval.figure_images), eval_extractor, data.pipeline, metrics,
                         cfg.eval.figure_images)
    return metrics

def batch_count(n: int, bs: int, world: int) -> int:
    """Optimiser steps per epoch: every batch of ``bs`` images, less a last one too small to give
    each of ``world`` processes an image (see :func:`lookright.data.stream.shard_slices`)."""
    return n // bs + (1 if n % bs >= world else 0)


def all_finite(fabric: Fabric, loss: torch.Tensor) -> bool:
    """Whether the loss is finite in every process (one more collective per step on several devices)."""
    finite = torch.isfinite(loss.detach())
    if fabric.world_size > 1:
        finite = fabric.all_reduce(finite.float(), reduce_op="min") > 0
    return bool(finite)


def augment_batch(x, input_mask, aug, generator) -> torch.Tensor:
    """Replace the non-mask pixels of the first ``aug.counterfactual`` share of a (shuffled) batch,
    in place (``x`` is the batch's own copy, gathered by index)."""
    k = int(round(aug.counterfactual * len(x)))
    if k == 0:
        return x
    x[:k] = counterfactual(x[:k], input_mask[:k], aug.fill, generator)
    return x


def patience_exhausted(cfg: RunConfig, epoch: int, best: dict) -> bool:
    """Early stopping: ``train.patience`` epochs have passed without a better selection score."""
    p = cfg.train.patience
    return p is not None and best["epoch"] is not None and epoch - best["epoch"] >= p


def method_name(cfg: RunConfig) -> str:
    name = cfg.loss.name or "vanilla"
    if cfg.augment.counterfactual > 0:
        name = "counterfactual" if name == "vanilla" else f"{name}+counterfactual"
    return name


#: epoch-record key -> logger tag
LOGGED = {"train_ce": "train/ce", "train_align": "train/align", "val_acc": "val/acc", "val_loss": "val/loss",
          "val_align": "val/align", "val_cf_acc": "val/counterfactual_acc", "test_acc": "shifted_test/acc",
          "lambda": "schedule/lambda", "lr": "schedule/lr"}


def log_epoch(loggers: Loggers, cfg: RunConfig, record: dict, model, te: EvalSet, extractor, pipeline) -> None:
    """Mirror an epoch to the loggers: its scalars, and every ``log.images_every`` epochs (and at the
    last) the attention overlays of the first shifted test images."""
    if not loggers.loggers:
        return
    step = record["epoch"] + 1
    loggers.log_scalars(step, {tag: record.get(key) for key, tag in LOGGED.items()})
    every = cfg.log.images_every
    if every and (step % every == 0 or step == cfg.train.epochs):
        fig = attention_grid_figure(model, te.head(cfg.log.images), extractor, pipeline, None, cfg.log.images,
                                    f"{cfg.name}, epoch {step}")
        loggers.log_image("attention/shifted_test", step, figure_pixels(fig))


def diverged(cfg: RunConfig, epoch: int, step: int, ce, align, lam: float) -> TrainingDiverged:
    parts = f"cross-entropy {ce.detach().item():.4g}" + ("" if align is None else f", alignment {align.detach().item():.4g}")
    cause = (f"optim.lr={cfg.optim.lr:g}" + (f" or loss.lambda0={cfg.loss.lambda0:g} (lambda now {lam:g})"
                                             if cfg.loss.name else ""))
    return TrainingDiverged(
        f"{cfg.name} seed {cfg.seed}: the loss is not finite at epoch {epoch + 1}, step {step + 1} ({parts}); "
        f"training stopped there. Lower {cause}; the last finished epoch's checkpoint is kept")
