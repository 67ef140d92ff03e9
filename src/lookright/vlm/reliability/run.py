"""One reliability run: load the CLIP, build the shapes splits, tune (or train the head on the
frozen CLIP), evaluate both protocols, measure attention alignment, write the run folder.

The folder follows :mod:`lookright.runs.folder` (kind ``reliability``; locked while it runs,
refused when it holds another config, ``metrics.json`` written only when the run finishes; no
checkpoints, so an interrupted run restarts in place). ``<out_dir>/<name>/seed<k>/`` holds
``config.yaml``, ``run.json``, ``metrics.json`` (seed, wall time, provenance, trainable
parameters, history, per-protocol summaries with Wilson 95% intervals, attention alignment),
``predictions.npz`` (per-image correctness, for McNemar), ``head.pt``, ``adapter/`` (LoRA, ``peft``
format) or ``clip.pt`` (full fine-tuning), and ``figures/`` (``tsne.png``, ``attention.png``).
Every file is written atomically. The evaluation of a finished run's model (``from_run``) is a run
folder of kind ``reliability-eval`` (``<run>/eval/seed<k>/``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lookright.errors import ConfigError, DataError, RunError
from lookright.metrics.statistics import wilson
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder
from lookright.runs.provenance import provenance, resolve_device, set_threads
from lookright.atomic import save_torch_atomic, write_file_atomic
from lookright.vlm.backends import ClipBundle, load_clip
from lookright.vlm.reliability.attention import attention_alignment
from lookright.vlm.reliability.config import FINGERPRINT_IGNORES, ReliabilityConfig, load_reliability_config
from lookright.vlm.reliability.encoder import ClipEncoder
from lookright.vlm.reliability.head import AttributeHead
from lookright.vlm.reliability.pairs import ReliabilitySet, build_set
from lookright.vlm.reliability.protocols import classification, embed_set, matching, summarise
from lookright.vlm.reliability.tune import Tuned, quiet_peft, tune

PROTOCOLS = ("matching", "classification")
KIND, EVAL_KIND = "reliability", "reliability-eval"
PACKAGES = ("transformers", "peft")


def load_model(cfg: ReliabilityConfig, device: torch.device | str | None = None) -> ClipBundle:
    m = cfg.model
    return load_clip(m.backend, path=m.path, model_name=m.model_name, checkpoint=m.checkpoint,
                     device=str(device or m.device), key="model")


def build_splits(cfg: ReliabilityConfig, clip: ClipBundle) -> tuple[ReliabilitySet, ReliabilitySet]:
    sc = cfg.data.shapes_config()
    common = dict(config=sc, attributes=cfg.data.attributes, strategies=cfg.eval.strategies,
                  model_size=clip.image_size, distractors=cfg.eval.distractors)
    return (build_set(cfg.data.n_train, cfg.seed, "train", **common),
            build_set(cfg.data.n_test, cfg.seed, "test", **common))


def evaluate(encoder: ClipEncoder, head: AttributeHead, test: ReliabilitySet, cfg: ReliabilityConfig) -> tuple[dict, dict]:
    """Summaries (with Wilson intervals) and the raw per-image results of both protocols."""
    emb = embed_set(encoder, test, cfg.eval.strategies, cfg.eval.batch_size)
    raw = {"matching": matching(emb, cfg.eval.strategies),
           "classification": classification(emb, head, test, cfg.eval.strategies)}
    summary = {}
    for protocol, r in raw.items():
        s = summarise(r, protocol, test.attributes)
        normal = r["normal"] if protocol == "matching" else np.stack([r["normal"][a] for a in test.attributes], 1)
        s["normal_wilson95"] = [100 * x for x in wilson(int(normal.sum()), normal.size)]
        s["attacked_wilson95"] = {k: [100 * x for x in wilson(int(np.sum(v)), np.size(v))]
                                  for k, v in r["attacked"].items()}
        summary[protocol] = s
    return summary, raw


def flat_predictions(raw: dict, attributes: list[str]) -> dict[str, np.ndarray]:
    out = {"matching/normal": raw["matching"]["normal"]}
    for s, v in raw["matching"]["attacked"].items():
        out[f"matching/{s}"] = v
    for a in attributes:
        out[f"classification/normal/{a}"] = raw["classification"]["normal"][a]
    for s, v in raw["classification"]["attacked"].items():
        out[f"classification/{s}"] = v
    return out


def save_adapter(peft_model, folder: Path) -> None:
    """``peft`` writes a folder: into a unique temporary one, then moved into place."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        peft_model.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_tuned(tuned: Tuned, run_dir: Path, method: str) -> None:
    save_torch_atomic(tuned.head.state_dict(), run_dir / "head.pt")
    if method == "lora":
        save_adapter(tuned.peft_model, run_dir / "adapter")
    elif method == "full":
        save_torch_atomic(tuned.clip.model.state_dict(), run_dir / "clip.pt")


def source_config(run_dir: str | Path, cfg: ReliabilityConfig | None = None) -> ReliabilityConfig:
    """The config of the finished reliability run in ``run_dir`` (a RunError for anything else);
    with ``cfg``, also check that ``cfg`` evaluates the attributes its head predicts."""
    folder = RunFolder(run_dir)
    state = folder.state()
    if state != "finished" or (folder.info() or {}).get("kind") != KIND:
        kind = (folder.info() or {}).get("kind", "no run")
        raise RunError(f"{run_dir} is not a finished reliability run ({state}, {kind}); "
                       "tune one with `lookright vlm tune CONFIG` first")
    run_cfg = load_reliability_config(Path(run_dir) / "config.yaml")
    if cfg is not None and run_cfg.data.attributes != cfg.data.attributes:
        raise ConfigError(f"the run's head predicts {run_cfg.data.attributes} but this config evaluates "
                          f"{cfg.data.attributes}; set data.attributes={run_cfg.data.attributes}")
    return run_cfg


def load_tuned(run_dir: str | Path, cfg: ReliabilityConfig | None = None,
               device: torch.device | str | None = None) -> tuple[ReliabilityConfig, ClipBundle, AttributeHead]:
    """Rebuild a finished run's tuned model (CLIP with its adapter or weights, and the head)."""
    run_dir = Path(run_dir)
    cfg = cfg or source_config(run_dir)
    if not (run_dir / "head.pt").is_file():
        raise DataError(f"{run_dir}/head.pt is missing: the head of this run is gone; delete the folder and "
                        "run it again")
    clip = load_model(cfg, device)
    if cfg.tune.method == "lora":
        from peft import PeftModel

        if not (run_dir / "adapter").is_dir():
            raise DataError(f"{run_dir}/adapter is missing: the LoRA weights of this run are gone")
        with quiet_peft():
            PeftModel.from_pretrained(clip.model, run_dir / "adapter")  # injects the adapter into clip.model
    elif cfg.tune.method == "full":
        clip.model.load_state_dict(torch.load(run_dir / "clip.pt", map_location=clip.device, weights_only=True))
    clip.model.eval()
    train_dim = ClipEncoder(clip).text(["a"]).shape[-1]
    sc = cfg.data.shapes_config()
    head = AttributeHead(train_dim, {a: len(sc.vocabulary(a)) for a in cfg.data.attributes}, cfg.head.hidden)
    head.load_state_dict(torch.load(run_dir / "head.pt", map_location="cpu", weights_only=True))
    return cfg, clip, head.to(clip.device).eval()


@torch.no_grad()
def embeddings_for_tsne(encoder: ClipEncoder, ds: ReliabilitySet, n: int = 300) -> dict:
    n = min(n, len(ds))
    return {"image": encoder.image_batched(ds.pixels[:n].to(encoder.clip.device)).cpu().numpy(),
            "text": encoder.text_batched(ds.captions[:n]).cpu().numpy(),
            "shape": ds.labels.get("shape", ds.labels[ds.attributes[0]])[:n].numpy()}


def default_run_dir(cfg: ReliabilityConfig, from_run: str | Path | None = None) -> Path:
    if from_run is not None:
        return Path(from_run) / "eval" / f"seed{cfg.seed}"
    return Path(cfg.out_dir) / cfg.name / f"seed{cfg.seed}"


def run_reliability(cfg: ReliabilityConfig, progress: bool = True, run_dir: str | Path | None = None,
                    from_run: str | Path | None = None, resume: bool = False) -> dict:
    """Tune (per ``cfg.tune.method``) and evaluate into a new run folder; ``resume`` restarts an
    interrupted or failed one in place. With ``from_run``, evaluate that finished run's model."""
    start = time.perf_counter()
    set_threads(cfg.model.threads, "model.threads")  # every config check runs before the folder is touched
    device = resolve_device(cfg.model.device, "model.device")
    run_cfg = None if from_run is None else source_config(from_run, cfg)
    folder = RunFolder(run_dir or default_run_dir(cfg, from_run))
    if resume and folder.state() == "new":
        raise RunError(f"{folder.path} holds no run to resume; start it without resume")
    folder.open(KIND if from_run is None else EVAL_KIND, config_tree(cfg), dump_config(cfg), FINGERPRINT_IGNORES,
                resume=resume)
    with folder.guard():
        if from_run is None:
            clip = load_model(cfg, device)
            tuned, method = None, cfg.tune.method
        else:
            _, clip, head = load_tuned(from_run, run_cfg, device)
            tuned, method = Tuned(clip, head), run_cfg.tune.method
        metrics = _run(cfg, folder.path, clip, tuned, method, progress)
        metrics.update(from_run=None if from_run is None else str(from_run), wall_time_s=time.perf_counter() - start)
        return folder.finish(metrics, provenance(clip.device, PACKAGES))


def _run(cfg: ReliabilityConfig, run_dir: Path, clip: ClipBundle, tuned: Tuned | None, method: str,
         progress: bool) -> dict:
    """Tune (when ``tuned`` is None), evaluate, write the pipeline's files; return the metrics."""
    from lookright.vlm.reliability.figures import attention_figure, tsne_figure

    train, test = build_splits(cfg, clip)
    encoder = ClipEncoder(clip)
    before = embeddings_for_tsne(encoder, test) if cfg.figures and method != "frozen" and tuned is None else None
    n_att = min(cfg.eval.attention_images, len(test))
    masks = torch.as_tensor(test.data.masks[:n_att])
    baseline_alignment = None
    if before is not None:
        baseline_alignment = attention_alignment(encoder, test.pixels[:n_att], test.captions[:n_att], masks)
    if tuned is None:
        tuned = tune(clip, train, cfg, progress)
        save_tuned(tuned, run_dir, method)
    summary, raw = evaluate(encoder, tuned.head, test, cfg)
    alignment = attention_alignment(encoder, test.pixels[:n_att], test.captions[:n_att], masks)
    write_file_atomic(run_dir / "predictions.npz",
                      lambda f: np.savez_compressed(f, **flat_predictions(raw, test.attributes)))
    if cfg.figures:
        before_maps = None if baseline_alignment is None else baseline_alignment["maps"]
        attention_figure(test, alignment["maps"], before_maps, run_dir / "figures" / "attention.png",
                         f"{cfg.name}, seed {cfg.seed}")
        if before is not None:
            names = test.vocabulary("shape") if "shape" in test.attributes else test.vocabulary(test.attributes[0])
            after = embeddings_for_tsne(encoder, test)
            tsne_figure(before, after, names, run_dir / "figures" / "tsne.png", cfg.seed)
    return {
        "name": cfg.name, "seed": cfg.seed, "method": method, "model": clip.name,
        "trainable_parameters": tuned.trainable, "history": tuned.history, "results": summary,
        "attention": {"after": alignment["energy_pointing_game"],
                      "before": None if baseline_alignment is None else baseline_alignment["energy_pointing_game"]},
        "test_images": len(test), "train_images": len(train),
    }
