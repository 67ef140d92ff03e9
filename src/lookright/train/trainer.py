"""The training loop, top to bottom.

Two phases (Learning to Look): for ``attn_epochs`` epochs one loss alone is optimised (the
alignment loss, unscaled, by default; ``train.phase1_loss: ce`` for cross-entropy, as some
published scripts do); then the optimiser and scheduler are created anew and
``CE + lambda(e) * align`` is optimised. Vanilla training is ``loss.name = null`` and ``attn_epochs = 0``.

Everything lives on the device as tensors; batches are index slices of a permutation drawn
from a generator seeded by ``(seed, epoch)``, so a resumed run replays exactly the batches of
an uninterrupted one. A checkpoint is written atomically after every epoch. The run folder
follows :mod:`lookright.runs.folder`: locked while training, refused when it holds another config,
``metrics.json`` written only when the run finishes. A NaN or infinite loss stops the run at that
step (TrainingDiverged).
"""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lookright.attention import Extractor, cam_unsupported, create_extractor_from
from lookright.data import create_benchmark, load_embedded, load_mnist, split_validation
from lookright.data.benchmark import Split
from lookright.data.counterfactual import counterfactual, input_masks
from lookright.data.sources import USER_SOURCES, load_user_splits
from lookright.data.stream import RecordDataset, StreamSplit, batch_loader
from lookright.errors import ConfigError, RunError, TrainingDiverged
from lookright.losses import Alignment, AlignmentLoss, create_loss
from lookright.metrics import MetricAccumulator, accuracy, energy_pointing_game, predict
from lookright.metrics.counterfactual import counterfactual_scores
from lookright.models import create_model
from lookright.report.figures import attention_grid_figure, figure_pixels, save_run_figures
from lookright.targets import TEACHERS, MaskPipeline, build_targets
from lookright.atomic import save_torch_atomic
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder
from lookright.runs.loggers import Loggers
from lookright.runs.progress import progress_bar
from lookright.runs.provenance import provenance, resolve_device, set_threads
from lookright.train.checkpoint import load_checkpoint, load_weights
from lookright.train.config import FINGERPRINT_IGNORES, RunConfig
from lookright.train.fabric import check_accelerator, create_fabric, setup_model, setup_optimizer
from lookright.train.schedules import alignment_weight
from lookright.vlm.teacher import VLMTeacher, split_masks

LAST = "checkpoints/last.pt"
BEST = "checkpoints/best.pt"


@dataclass
class Tensors:
    """One split on the device: model inputs, labels, alignment targets, raw masks."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    mask: torch.Tensor
    shortcut: torch.Tensor
    input_mask: torch.Tensor | None = None  # (N, 1, h, w) relevant mask at the model input's size
    raw: torch.Tensor | None = None  # uint8 images, kept for a teacher run inside the loop
    teacher: object | None = None  # on-the-fly teacher: targets = pipeline(teacher(raw[idx], idx))

    def targets(self, idx: torch.Tensor, pipeline, grid) -> torch.Tensor:
        if self.target is not None:
            return self.target[idx]
        return pipeline(self.teacher(self.raw[idx], idx), grid)


@dataclass
class Batch:
    """One training batch on the device; ``targets()`` gives its alignment targets when asked."""

    x: torch.Tensor
    y: torch.Tensor
    input_mask: torch.Tensor | None
    targets: object  # () -> (B, *grid) targets


class TensorBatches:
    """Batches of a split held on the device: index slices of the permutation."""

    def __init__(self, data: Tensors, pipeline, grid) -> None:
        self.data, self.pipeline, self.grid = data, pipeline, grid

    def __len__(self) -> int:
        return len(self.data.y)

    def batches(self, perm: torch.Tensor, bs: int, epoch: int):
        d = self.data
        perm = perm.to(d.y.device)
        for start in range(0, len(perm), bs):
            idx = perm[start : start + bs]
            yield Batch(d.x[idx], d.y[idx], None if d.input_mask is None else d.input_mask[idx],
                        lambda idx=idx: d.targets(idx, self.pipeline, self.grid))


class StreamBatches:
    """The same batches decoded from disk by a DataLoader (``data.workers`` processes), then moved
    to the device; inputs, counterfactual masks and targets are made per batch as ``to_tensors``
    makes them for a whole split."""

    def __init__(self, split: StreamSplit, model: nn.Module, device, cfg: RunConfig, pipeline, grid) -> None:
        self.dataset = RecordDataset(split, cfg.data.augment)
        self.model, self.device, self.cfg, self.pipeline, self.grid = model, device, cfg, pipeline, grid

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, perm: torch.Tensor, bs: int, epoch: int):
        cfg, device = self.cfg, self.device
        loader = batch_loader(self.dataset, perm, bs, cfg.data.workers, cfg.seed * 100_003 + epoch,
                              pin_memory=device.type == "cuda")
        for raw, y, mask, shortcut in loader:
            raw, y, mask, shortcut = (t.to(device, non_blocking=True) for t in (raw, y, mask, shortcut))
            x = self.model.input_spec.prepare(raw)
            input_mask = input_masks(mask, x.shape[-2:], cfg.augment.dilate) if cfg.augment.counterfactual > 0 else None
            yield Batch(x, y, input_mask, lambda raw=raw, mask=mask, shortcut=shortcut: self._targets(raw, mask, shortcut))

    def _targets(self, raw, mask, shortcut) -> torch.Tensor:
        teacher = TEACHERS.create("mask", masks=mask if self.cfg.target.source == "mask" else shortcut)
        return build_targets(teacher, raw, self.pipeline, self.grid)


def load_splits(cfg: RunConfig) -> tuple[Split | StreamSplit, Split, Split, str]:
    """Load a user dataset (manifest, folder, npz) or generate the benchmark; carve train /
    validation / test (shifted) splits. Train is a :class:`StreamSplit` when ``data.stream`` says so."""
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
    return train, val, test, bench.source


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


def to_tensors(split: Split, model: nn.Module, device, cfg: RunConfig, pipeline, grid, split_name: str = "train",
               clip=None) -> Tensors:
    x = model.input_spec.prepare(torch.from_numpy(split.x)).to(device)
    mask = torch.from_numpy(split.mask).to(device)
    shortcut = torch.from_numpy(split.shortcut).to(device)
    data = Tensors(x=x, y=torch.from_numpy(split.y).to(device), target=None, mask=mask, shortcut=shortcut)
    # the relevant mask at the input's size: for counterfactual augmentation (train) and the
    # counterfactual validation score (val); the shifted test split never needs it
    if split_name == "val":
        data.input_mask = input_masks(mask, x.shape[-2:], cfg.train.counterfactual_dilate)
    elif split_name == "train" and cfg.augment.counterfactual > 0:
        data.input_mask = input_masks(mask, x.shape[-2:], cfg.augment.dilate)
    if pipeline is None:
        return data
    raw = torch.from_numpy(split.x).to(device)
    if cfg.target.teacher == "vlm":
        teacher = VLMTeacher(cfg.target.vlm, split.y, clip=clip)
        if cfg.target.vlm.mode == "on-the-fly" and split_name == "train":
            data.raw, data.teacher = raw, teacher
            return data
        masks, _status = split_masks(teacher, split.x, {"benchmark": cfg.data.name, "seed": cfg.seed, "split": split_name})
        teacher = TEACHERS.create("mask", masks=torch.from_numpy(masks).to(device))
    else:
        teacher = TEACHERS.create("mask", masks=mask if cfg.target.source == "mask" else shortcut)
    data.target = build_targets(teacher, raw, pipeline, grid)
    return data


def alignment_step(model, extractor, loss_fn, x, y, target, target_mode,
                   differentiable=True) -> tuple[torch.Tensor, Alignment]:
    """Forward once; return logits and the batch's ``Alignment(loss, valid)``."""
    if loss_fn.needs_model:  # input-space penalties that read the model (CDEP)
        with torch.set_grad_enabled(differentiable):
            return loss_fn.model_loss(model, x, y, target)
    cls = y if target_mode == "label" else None
    maps, logits = extractor.with_logits(model, x, cls, differentiable=differentiable)
    return logits, loss_fn.evaluate(maps, target)


@torch.no_grad()
def _no_grad_eval(model, x, y, bs):
    return accuracy(predict(model, x, bs), y)


def evaluate(model, data: Tensors, extractor, loss_fn, cfg: RunConfig) -> dict:
    """Accuracy and (if a loss is set) mean alignment loss on a split, in eval mode."""
    was_training = model.training
    model.eval()
    bs = cfg.train.eval_batch_size
    with torch.no_grad():
        logits = torch.cat([model(data.x[i : i + bs]) for i in range(0, len(data.y), bs)])
    out = {"acc": accuracy(logits.argmax(1), data.y), "loss": F.cross_entropy(logits, data.y).item()}
    if data.input_mask is not None:
        out["counterfactual"] = counterfactual_scores(model, data.x, data.y, data.input_mask, cfg.seed, bs,
                                                      clean=logits.argmax(1))
    if loss_fn is not None and data.target is not None:
        total, n = 0.0, 0
        for i in range(0, len(data.y), bs):
            _, (value, k) = alignment_step(model, extractor, loss_fn, data.x[i : i + bs], data.y[i : i + bs],
                                           data.target[i : i + bs], cfg.attention.target, differentiable=False)
            total, n = total + value.item() * k, n + k
        out["align"] = total / n if n else None
    model.train(was_training)
    return out


def attention_mass(model, data: Tensors, extractor, bs: int) -> dict:
    """Energy of the extractor's map (true class) on the digit and on the shortcut region."""
    was_training = model.training
    model.eval()
    digit, shortcut = MetricAccumulator(energy_pointing_game), MetricAccumulator(energy_pointing_game)
    for i in range(0, len(data.y), bs):
        maps = extractor(model, data.x[i : i + bs], data.y[i : i + bs])
        digit.update(maps, data.mask[i : i + bs])
        shortcut.update(maps, data.shortcut[i : i + bs])
    model.train(was_training)
    return {"digit": digit.compute(), "shortcut": shortcut.compute()}


def input_gradient_mass(model, data: Tensors, bs: int) -> dict:
    """Where the decision reads from, whatever the map shows: energy of the true class's squared
    input gradient ``(d log p_y / dx)^2`` on the digit and on the shortcut region."""
    return attention_mass(model, data, create_extractor_from("input-gradients", {"target": "class"}), bs)


def selection_score(cfg: RunConfig, epoch: int, val: dict) -> float | None:
    rule = cfg.train.selection
    if rule == "last":
        return float(epoch)
    if epoch < cfg.train.attn_epochs:
        return None
    if rule == "val_loss":
        return -val["loss"]
    if rule == "counterfactual":
        return val["counterfactual"]["acc"]
    if rule in ("val_acc_x_align", "val_acc_x_exp_align"):
        if val.get("align") is None:
            raise ConfigError(f"train.selection {rule!r} needs an alignment loss")
        if rule == "val_acc_x_align":
            return val["acc"] * (1.0 - val["align"])
        return val["acc"] * math.exp(-cfg.train.selection_beta * val["align"])
    return val["acc"]


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
    it stays interrupted, never finished).
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    # every check that can fail on the config runs before the folder is touched
    set_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    check_accelerator(cfg, device)
    torch.manual_seed(cfg.seed)  # the model's initialisation; building it also validates every name
    parts = build_parts(cfg)
    folder = RunFolder(run_dir)
    if resume and folder.state() == "new":
        raise RunError(f"{run_dir} holds no run to resume; start it without --resume")
    found = folder.open("supervised", config_tree(cfg), dump_config(cfg), FINGERPRINT_IGNORES, resume=resume)
    with folder.guard():
        return _train(cfg, folder, found, parts, progress, stop_after_epoch, device, started, on_epoch)


def _train(cfg: RunConfig, folder: RunFolder, found: str, parts: tuple, progress: bool, stop_after_epoch: int | None,
           device: torch.device, started: float, on_epoch=None) -> dict:
    run_dir = folder.path
    state = load_checkpoint(run_dir / LAST) if found != "new" and (run_dir / LAST).is_file() else None

    model, extractor, loss_fn, eval_extractor = parts
    model.to(device)
    # Fabric runs the training step; extractors, checkpoints and evaluation keep the plain model
    fabric = create_fabric(cfg, device)
    step_model = setup_model(fabric, model, cfg.train.compile)
    train_split, val_split, test_split, source = load_splits(cfg)
    pipeline = MaskPipeline(cfg.target.pipeline) if loss_fn is not None else None
    x_probe = model.input_spec.prepare(torch.from_numpy(val_split.x[:2])).to(device)
    grid = attention_grid(model, extractor, x_probe) if extractor is not None else None
    if loss_fn is not None and loss_fn.needs_model:
        grid = tuple(x_probe.shape[-2:])  # its region lives at the model input's resolution
    clip = None
    if pipeline is not None and cfg.target.teacher == "vlm":
        clip = cfg.target.vlm.load_clip()
    tr = (StreamBatches(train_split, model, device, cfg, pipeline, grid) if isinstance(train_split, StreamSplit)
          else TensorBatches(to_tensors(train_split, model, device, cfg, pipeline, grid, "train", clip), pipeline, grid))
    va, te = (to_tensors(s, model, device, cfg, pipeline, grid, name, clip)
              for s, name in ((val_split, "val"), (test_split, "test")))

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

    prior_elapsed = state.get("elapsed", 0.0) if state is not None else 0.0
    n = len(tr)
    bs = cfg.train.batch_size
    steps = (n + bs - 1) // bs
    model.train()
    loggers = Loggers(cfg.log.backends, run_dir, cfg.name, config_tree(cfg), start_epoch)
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
            cf_gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 50_000)
            sums = {"ce": 0.0, "align": 0.0}
            for step, batch in enumerate(tr.batches(perm, bs, epoch)):
                x, y = batch.x, batch.y
                if cfg.augment.counterfactual > 0:
                    x = augment_batch(x, batch.input_mask, cfg.augment, cf_gen)
                if not use_align:
                    logits = step_model(x)
                    align = None
                else:
                    with fabric.autocast():  # the extractor hooks the plain model's submodules
                        logits, (align, _valid) = alignment_step(model, extractor, loss_fn, x, y,
                                                                 batch.targets(), cfg.attention.target)
                ce = F.cross_entropy(logits.float(), y)
                if attention_only:
                    loss = align if cfg.train.phase1_loss == "align" else ce
                else:
                    loss = ce if align is None else ce + lam * align
                if not torch.isfinite(loss):
                    raise diverged(cfg, epoch, step, ce, align, lam)
                optimizer.zero_grad(set_to_none=True)
                fabric.backward(loss)
                optimizer.step()
                sums["ce"] += ce.detach()
                if align is not None:
                    sums["align"] += align.detach()
                bar.advance(task)
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            val = evaluate(model, va, extractor, loss_fn, cfg)
            test_acc = _no_grad_eval(model.eval(), te.x, te.y, cfg.train.eval_batch_size)
            model.train()
            record = {
                "epoch": epoch, "phase": 1 if attention_only else 2, "lambda": lam,
                "lr": lr_used,
                "train_ce": float(sums["ce"]) / steps, "train_align": float(sums["align"]) / steps if use_align else None,
                "val_acc": val["acc"], "val_loss": val["loss"], "val_align": val.get("align"),
                "val_cf_acc": val["counterfactual"]["acc"], "val_cf_consistency": val["counterfactual"]["consistency"],
                "test_acc": test_acc,
            }
            history.append(record)
            log_epoch(loggers, cfg, record, model, te, eval_extractor, pipeline)
            score = selection_score(cfg, epoch, val)
            if score is not None and (best["score"] is None or score > best["score"]):
                best = {"score": score, "epoch": epoch}
                save_torch_atomic({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, run_dir / BEST)
            if progress:
                align_note = f", val align {val['align']:.4f}" if val.get("align") is not None else ""
                bar.console.log(f"{cfg.name} epoch {epoch + 1}/{epochs}: val {val['acc']:.2f}%, "
                                f"shifted test {test_acc:.2f}%{align_note}")
            save_torch_atomic({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                "best": best, "rng": torch.get_rng_state(),
                "elapsed": prior_elapsed + time.perf_counter() - started,
            }, run_dir / LAST)
            if on_epoch is not None:
                on_epoch(record)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
                return {"interrupted_after_epoch": epoch + 1}
            if patience_exhausted(cfg, epoch, best):
                break

    elapsed = prior_elapsed + time.perf_counter() - started
    if best["epoch"] is not None:
        model.load_state_dict(torch.load(run_dir / BEST, map_location=device, weights_only=True))
    final_val = evaluate(model, va, extractor, loss_fn, cfg)
    model.eval()
    metrics = {
        "name": cfg.name, "dataset": cfg.data.name, "data_source": source, "method": method_name(cfg), "model": cfg.model.name,
        "seed": cfg.seed,
        "selected_epoch": best["epoch"], "selection": cfg.train.selection,
        "shifted_test_acc": _no_grad_eval(model, te.x, te.y, cfg.train.eval_batch_size),
        "val_acc": final_val["acc"], "val_loss": final_val["loss"], "val_align": final_val.get("align"),
        "val_counterfactual_acc": final_val["counterfactual"]["acc"],
        "val_counterfactual_consistency": final_val["counterfactual"]["consistency"],
        "epochs_run": len(history),
        "attention_mass": attention_mass(model, te, eval_extractor, cfg.train.eval_batch_size),
        "input_gradient_mass": input_gradient_mass(model, te, cfg.train.eval_batch_size),
        "eval_extractor": eval_extractor.name, "precision": cfg.train.precision,
        "sizes": {"train": len(tr), "val": len(va.y), "test": len(te.y)},
        "history": history, "wall_time_s": round(elapsed, 2),
    }
    save_run_figures(run_dir, model, te, eval_extractor, pipeline, metrics, cfg.eval.figure_images)
    return folder.finish(metrics, provenance(device))


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


def log_epoch(loggers: Loggers, cfg: RunConfig, record: dict, model, te: Tensors, extractor, pipeline) -> None:
    """Mirror an epoch to the loggers: its scalars, and every ``log.images_every`` epochs (and at the
    last) the attention overlays of the first shifted test images."""
    if not loggers.loggers:
        return
    step = record["epoch"] + 1
    loggers.log_scalars(step, {tag: record.get(key) for key, tag in LOGGED.items()})
    every = cfg.log.images_every
    if every and (step % every == 0 or step == cfg.train.epochs):
        fig = attention_grid_figure(model, te, extractor, pipeline, None, cfg.log.images, f"{cfg.name}, epoch {step}")
        loggers.log_image("attention/shifted_test", step, figure_pixels(fig))


def diverged(cfg: RunConfig, epoch: int, step: int, ce, align, lam: float) -> TrainingDiverged:
    parts = f"cross-entropy {ce.detach().item():.4g}" + ("" if align is None else f", alignment {align.detach().item():.4g}")
    cause = (f"optim.lr={cfg.optim.lr:g}" + (f" or loss.lambda0={cfg.loss.lambda0:g} (lambda now {lam:g})"
                                             if cfg.loss.name else ""))
    return TrainingDiverged(
        f"{cfg.name} seed {cfg.seed}: the loss is not finite at epoch {epoch + 1}, step {step + 1} ({parts}); "
        f"training stopped there. Lower {cause}; the last finished epoch's checkpoint is kept")
