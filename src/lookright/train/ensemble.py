"""Ensembled training: S runs that share an architecture, trained in one process as one batched model.

Members are runs that differ only in :data:`MAY_DIFFER` (seed, name, ``loss.lambda0`` and its ramp,
``train.attn_epochs``, the phase-1 loss, the optimiser and scheduler settings, the selection rule,
patience). Each member keeps everything a sequential run has: its initialisation
(``torch.manual_seed(seed)`` before the model is built), its data (generated and split with its
seed), its data order (``randperm`` seeded ``seed * 100_003 + epoch``) and counterfactual draws,
its optimiser and scheduler (created anew at its own phase switch), its selection, checkpoints and
run folder (opened, guarded and finished through :class:`~lookright.runs.folder.RunFolder` with
the sequential run's fingerprint, so ``summarize`` and ``status`` cannot tell them apart).

One step: each member's parameters are stacked (``torch.stack`` of its own leaves, so gradients
reach them), the model and its CAM run once under ``torch.vmap`` of ``torch.func.functional_call``,
the members' objectives ``w_ce * CE_s + w_align * align_s`` (phase 1: ``(0, 1)`` or ``(1, 0)``;
phase 2: ``(1, lambda_s(e))``) are summed and back-propagated once, and each running member's
optimiser steps. Members with the same seed see the same batches: the input is then passed once
(``in_dims=None``), and the first convolution runs once with S times its output channels.
Validation, selection, checkpoints and final metrics are the trainer's own functions, per member.

Results equal the sequential runs up to floating-point reassociation (the batched kernels sum in
another order); the tested tolerance is :data:`TOLERANCE`. What cannot be batched this way is
refused with the reason (:func:`unsupported`): streamed data, input-space penalties (CDEP), maps
that need gradients (Grad-CAM, input gradients), mixed precision, on-the-fly VLM teachers.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, closing
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lookright.attention.cam import CAM
from lookright.data.sources import USER_SOURCES
from lookright.errors import ConfigError, LookrightError
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder, fingerprint
from lookright.runs.loggers import Loggers
from lookright.runs.provenance import provenance, resolve_device, set_threads
from lookright.train.config import FINGERPRINT_IGNORES, RunConfig
from lookright.train.fast import channels_last, check_due, sums_diverged
from lookright.train.schedules import (
    alignment_weight,
    create_optimizer,
    create_scheduler,
)
from lookright.train.trainer import (
    augment_batch,
    batch_count,
    build_parts,
    end_epoch,
    final_metrics,
    load_data,
    patience_exhausted,
)

#: config keys in which the members of one ensemble may differ (a key names its whole section)
MAY_DIFFER = ("seed", "name", "loss.lambda0", "loss.ramp", "train.attn_epochs", "train.phase1_loss",
              "train.selection", "train.selection_beta", "train.patience", "optim", "scheduler")
#: an ensembled member against its sequential run, 2 epochs on 300 embedded digits (tests/test_ensemble.py):
#: per-epoch train CE (relative) and accuracies (points)
#: losses: float32 summation order differs with the CPU's kernels (3e-4 relative seen on an AMD EPYC)
TOLERANCE = {"train_ce_rel": 1e-3, "acc_points": 1.0}


def group_key(cfg: RunConfig) -> str:
    """Runs with equal keys can be members of one ensemble."""
    return fingerprint(config_tree(cfg), FINGERPRINT_IGNORES + MAY_DIFFER)


def unsupported(cfg: RunConfig) -> str | None:
    """Why ``cfg`` cannot be a member of an ensemble (None when it can)."""
    if cfg.data.name in USER_SOURCES and cfg.data.stream is not False:
        return f"data.name {cfg.data.name} may stream from disk (data.stream: {cfg.data.stream}); set data.stream: false"
    if cfg.train.precision != "32":
        return f"train.precision {cfg.train.precision}: ensembles train in full precision"
    if cfg.target.teacher == "vlm" and cfg.target.vlm.mode == "on-the-fly":
        return "target.vlm.mode on-the-fly: fill the pseudo-mask cache first (lookright teach)"
    if cfg.loss.name is not None:
        _model, extractor, loss_fn, _ = build_parts(cfg)
        if loss_fn.needs_model:
            return f"loss {cfg.loss.name} reads the model's input space, not a map"
        if not isinstance(extractor, CAM):
            return f"attention.extractor {extractor.name}: only CAM maps are batched (one forward, no gradients)"
    return None


class _Probe(nn.Module):
    """``(maps, logits)`` of one member, for :func:`torch.func.functional_call` under vmap (the
    extractor reads the head's weight by name, so it must see the member's parameters)."""

    def __init__(self, model: nn.Module, extractor, target_mode: str) -> None:
        super().__init__()
        self.model, self.extractor, self.target_mode = model, extractor, target_mode

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        if self.extractor is None:
            logits = self.model(x)
            return logits, logits.new_zeros(())
        cls = y if self.target_mode == "label" else None
        maps, logits = self.extractor.with_logits(self.model, x, cls, differentiable=True)
        return logits, maps


class Member:
    """One run of the ensemble: its config, folder, parts, data, optimiser and progress."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path, device: torch.device, shared: dict) -> None:
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)  # the model's initialisation, as in a sequential run
        self.parts = build_parts(cfg)
        self.rng = torch.get_rng_state()
        self.model = self.parts[0].to(device)
        self.folder = RunFolder(run_dir)
        if self.folder.state() != "new":
            raise ConfigError(f"{run_dir} already holds a run; ensembles start new runs only (a sweep resumes "
                              "interrupted runs one by one)")
        if cfg.train.fast:
            channels_last(self.model)
        if cfg.seed not in shared:  # members with one seed share their data (only MAY_DIFFER keys differ)
            shared[cfg.seed] = load_data(cfg, self.model, self.parts[1], self.parts[2], device)[1]
        self.data = shared[cfg.seed]
        self.cfg = cfg.for_dataset(self.data.source)  # trained with; the folder keeps the config as given
        self.given = cfg
        self.history: list[dict] = []
        self.best = {"score": None, "epoch": None}
        self.done = False
        self.error: BaseException | None = None

    def open(self, stack: ExitStack) -> None:
        self.folder.open("supervised", config_tree(self.given), dump_config(self.given), FINGERPRINT_IGNORES)
        stack.callback(self.folder.release)
        self.loggers = stack.enter_context(closing(Loggers(self.cfg.log.backends, self.folder.path, self.cfg.name,
                                                           config_tree(self.cfg))))

    def new_phase(self, epochs: int) -> None:
        self.optimizer = create_optimizer(self.model.parameters(), self.cfg.optim, fused=self.cfg.train.fast)
        self.scheduler = create_scheduler(self.optimizer, self.cfg.scheduler, epochs)

    def fail(self, exc: BaseException) -> None:
        self.done, self.error = True, exc
        self.folder.fail(exc)


def train_ensemble(cfgs: list[RunConfig], run_dirs: list[str | Path]) -> list[dict]:
    """Train the runs ``cfgs`` into ``run_dirs`` as one ensemble; one result per run: its metrics,
    or ``{"error": ..., "run_dir": ...}`` when that member failed (the others go on)."""
    started = time.perf_counter()
    reasons = {f"{c.name} seed {c.seed}": unsupported(c) for c in cfgs}
    refused = {k: v for k, v in reasons.items() if v}
    if refused:
        raise ConfigError("cannot train as an ensemble: " + "; ".join(f"{k}: {v}" for k, v in refused.items()))
    if len({group_key(c) for c in cfgs}) > 1:
        raise ConfigError(f"the members of an ensemble may differ only in {', '.join(MAY_DIFFER)}")
    first = cfgs[0]
    set_threads(first.train.threads)
    device = resolve_device(first.train.device)
    shared: dict = {}
    members = [Member(c, d, device, shared) for c, d in zip(cfgs, run_dirs, strict=True)]
    with ExitStack() as stack:
        for m in members:
            m.open(stack)
        try:
            _train_members(members, first, started)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # an error of the whole ensemble fails every running member
            for m in members:
                if m.error is None:
                    m.fail(exc)
            raise
        results = []
        for m in members:
            if m.error is None:
                try:
                    torch.set_rng_state(m.rng)
                    metrics = final_metrics(m.cfg, m.folder.path, m.parts, m.data, m.history, m.best,
                                            time.perf_counter() - started, device)
                    results.append(m.folder.finish({**metrics, "ensemble_size": len(members)}, provenance(device)))
                    continue
                except LookrightError as exc:
                    m.fail(exc)
            results.append({"error": f"{type(m.error).__name__}: {m.error}", "run_dir": str(m.folder.path)})
    return results


def _train_members(members: list[Member], first: RunConfig, started: float) -> None:
    model, extractor = members[0].model, members[0].parts[1]
    probe = _Probe(model, extractor, first.attention.target)
    names = [n for n, _ in model.named_parameters()]
    leaves = {k: [dict(m.model.named_parameters())[k] for m in members] for k in names}
    shared_input = len({m.cfg.seed for m in members}) == 1
    batched = torch.vmap(lambda params, x, y: functional_call(probe, params, (x, y)),
                         in_dims=(0, None if shared_input else 0, None if shared_input else 0))
    loss_fn, epochs, bs = members[0].parts[2], first.train.epochs, first.train.batch_size
    n = len(members[0].data.train)
    steps = batch_count(n, bs, 1)
    for m in members:
        m.model.train()
        m.new_phase(m.cfg.train.attn_epochs or epochs)
    device = members[0].device
    for epoch in range(epochs):
        w_ce, w_align = _start_epoch(members, epoch, epochs, n, loss_fn is not None)
        sums_ce = torch.zeros(len(members), device=device)
        sums_align = torch.zeros(len(members), device=device)
        streams = [m.data.train.batches(m.perm, bs, epoch) for m in (members[:1] if shared_input else members)]
        for step, batches in enumerate(zip(*streams, strict=True)):
            xs = [augment_batch(b.x, b.input_mask, m.cfg.augment, m.cf_gen) if m.cfg.augment.counterfactual > 0
                  else b.x for b, m in zip(batches, members, strict=False)]
            x = xs[0] if shared_input else torch.stack(xs)
            y = batches[0].y if shared_input else torch.stack([b.y for b in batches])
            if first.train.fast:
                x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
            params = {f"model.{k}": torch.stack(leaves[k]) for k in names}
            logits, maps = batched(params, x, y)
            yy = y.expand(len(members), *y.shape) if shared_input else y
            ce = F.cross_entropy(logits.flatten(0, 1), yy.flatten(), reduction="none").view(yy.shape).mean(dim=1)
            if loss_fn is not None:
                targets = batches[0].targets()
                targets = targets.expand(len(members), *targets.shape) if shared_input else \
                    torch.stack([targets, *(b.targets() for b in batches[1:])])
                align = loss_fn.member_losses(maps, targets)
            else:
                align = torch.zeros_like(ce)
            for m in members:
                m.optimizer.zero_grad(set_to_none=True)
            (w_ce * ce + w_align * align).sum().backward()
            for m in members:
                if not m.done:
                    m.optimizer.step()
            sums_ce += ce.detach()
            sums_align += align.detach()
            if check_due(step, steps):
                _check_members(members, sums_ce, sums_align, epoch, step)
        for i, m in enumerate(members):
            if m.done:
                continue
            torch.set_rng_state(m.rng)  # what a sequential run's checkpoint holds
            sums = {"ce": sums_ce[i], "align": sums_align[i]}
            try:
                _record, m.best = end_epoch(m.cfg, m.parts, m.data, m.folder.path, m.optimizer, m.scheduler, epoch,
                                            m.lam, sums, steps, m.use_align, m.history, m.best, m.loggers,
                                            lambda: time.perf_counter() - started, precision={})
            except LookrightError as exc:
                m.fail(exc)
                continue
            if patience_exhausted(m.cfg, epoch, m.best):
                m.done = True
        if all(m.done for m in members):
            break


def _start_epoch(members: list[Member], epoch: int, epochs: int, n: int, aligned: bool):
    """Each member's phase switch, lambda(e), data order and counterfactual draws for ``epoch``, and
    the weights of its objective ``w_ce * CE + w_align * align`` (zero for a member that stopped)."""
    weights = []
    for m in members:
        attn = m.cfg.train.attn_epochs
        if attn and epoch == attn:
            m.new_phase(epochs - attn)
        phase1 = epoch < attn
        m.use_align = aligned and not (phase1 and m.cfg.train.phase1_loss == "ce")
        m.lam = alignment_weight(m.cfg.loss, epoch, attn)
        if phase1:
            w = (0.0, 1.0) if m.cfg.train.phase1_loss == "align" else (1.0, 0.0)
        else:
            w = (1.0, m.lam if aligned else 0.0)
        weights.append((0.0, 0.0) if m.done else w)
        m.perm = torch.randperm(n, generator=torch.Generator().manual_seed(m.cfg.seed * 100_003 + epoch))
        m.cf_gen = torch.Generator().manual_seed(m.cfg.seed * 100_003 + epoch + 50_000)
    device = members[0].device
    return tuple(torch.tensor(w, device=device) for w in zip(*weights, strict=True))


def _check_members(members: list[Member], sums_ce, sums_align, epoch: int, step: int) -> None:
    """Fail (TrainingDiverged) each running member whose summed losses are no longer finite."""
    finite = torch.isfinite(sums_ce + sums_align).tolist()
    for i, m in enumerate(members):
        if not m.done and not finite[i]:
            m.fail(sums_diverged(f"{m.cfg.name} seed {m.cfg.seed}", epoch, step,
                                 {"ce": sums_ce[i], "align": sums_align[i]}))
