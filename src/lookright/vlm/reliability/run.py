"""One reliability run: load the CLIP, build the shapes splits, tune (or train the head on the
frozen CLIP), evaluate both protocols, measure attention alignment, write the run folder.

Run folder ``<out_dir>/<name>/seed<k>/``: ``config.yaml``, ``metrics.json`` (seed, commit,
versions, device, wall time, trainable parameters, history, per-protocol summaries with Wilson
95% intervals, attention alignment), ``predictions.npz`` (per-image correctness, for McNemar),
``head.pt``, ``adapter/`` (LoRA, ``peft`` format) or ``clip.pt`` (full fine-tuning), and
``figures/`` (``tsne.png``, ``attention.png``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from lookright.errors import ConfigError, DataError
from lookright.metrics.statistics import wilson
from lookright.train.config import dump_config
from lookright.train.provenance import device_name, git_commit, versions
from lookright.vlm.backends import ClipBundle, load_clip
from lookright.vlm.reliability.attention import attention_alignment
from lookright.vlm.reliability.config import ReliabilityConfig
from lookright.vlm.reliability.encoder import ClipEncoder
from lookright.vlm.reliability.head import AttributeHead
from lookright.vlm.reliability.pairs import ReliabilitySet, build_set
from lookright.vlm.reliability.protocols import classification, embed_set, matching, summarise
from lookright.vlm.reliability.tune import Tuned, quiet_peft, tune

PROTOCOLS = ("matching", "classification")


def load_model(cfg: ReliabilityConfig) -> ClipBundle:
    m = cfg.model
    if m.threads:
        torch.set_num_threads(m.threads)
    return load_clip(m.backend, path=m.path, model_name=m.model_name, checkpoint=m.checkpoint, device=m.device)


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


def save_tuned(tuned: Tuned, run_dir: Path, method: str) -> None:
    torch.save(tuned.head.state_dict(), run_dir / "head.pt")
    if method == "lora":
        tuned.peft_model.save_pretrained(run_dir / "adapter")
    elif method == "full":
        torch.save(tuned.clip.model.state_dict(), run_dir / "clip.pt")


def load_tuned(run_dir: str | Path, cfg: ReliabilityConfig | None = None) -> tuple[ReliabilityConfig, ClipBundle, AttributeHead]:
    """Rebuild a tuned run (CLIP with its adapter or weights, and the head) from its folder."""
    from lookright.vlm.reliability.config import load_reliability_config

    run_dir = Path(run_dir)
    if not (run_dir / "head.pt").is_file():
        raise DataError(f"{run_dir} is not a reliability run folder (head.pt missing); run `lookright vlm tune` first")
    cfg = cfg or load_reliability_config(run_dir / "config.yaml")
    clip = load_model(cfg)
    if cfg.tune.method == "lora":
        from peft import PeftModel

        if not (run_dir / "adapter").is_dir():
            raise DataError(f"{run_dir}/adapter is missing: the LoRA weights of this run are gone")
        with quiet_peft():
            PeftModel.from_pretrained(clip.model, run_dir / "adapter")  # injects the adapter into clip.model
    elif cfg.tune.method == "full":
        clip.model.load_state_dict(torch.load(run_dir / "clip.pt", map_location=clip.device))
    clip.model.eval()
    train_dim = ClipEncoder(clip).text(["a"]).shape[-1]
    sc = cfg.data.shapes_config()
    head = AttributeHead(train_dim, {a: len(sc.vocabulary(a)) for a in cfg.data.attributes}, cfg.head.hidden)
    head.load_state_dict(torch.load(run_dir / "head.pt", map_location="cpu"))
    return cfg, clip, head.to(clip.device).eval()


@torch.no_grad()
def embeddings_for_tsne(encoder: ClipEncoder, ds: ReliabilitySet, n: int = 300) -> dict:
    n = min(n, len(ds))
    return {"image": encoder.image_batched(ds.pixels[:n].to(encoder.clip.device)).cpu().numpy(),
            "text": encoder.text_batched(ds.captions[:n]).cpu().numpy(),
            "shape": ds.labels.get("shape", ds.labels[ds.attributes[0]])[:n].numpy()}


def run_reliability(cfg: ReliabilityConfig, progress: bool = True, run_dir: str | Path | None = None,
                    from_run: str | Path | None = None) -> dict:
    """Tune (per ``cfg.tune.method``) and evaluate; with ``from_run``, evaluate that run's model."""
    from lookright.vlm.reliability.figures import attention_figure, tsne_figure

    start = time.perf_counter()
    run_dir = Path(run_dir or Path(cfg.out_dir) / cfg.name / f"seed{cfg.seed}")
    run_dir.mkdir(parents=True, exist_ok=True)
    method = cfg.tune.method
    if from_run is not None:
        run_cfg, clip, head = load_tuned(from_run)
        if run_cfg.data.attributes != cfg.data.attributes:
            raise ConfigError(f"the run's head predicts {run_cfg.data.attributes} but this config evaluates "
                              f"{cfg.data.attributes}; set data.attributes={run_cfg.data.attributes}")
        tuned, method = Tuned(clip, head), run_cfg.tune.method
    else:
        clip = load_model(cfg)
    train, test = build_splits(cfg, clip)
    encoder = ClipEncoder(clip)
    before = embeddings_for_tsne(encoder, test) if cfg.figures and method != "frozen" and from_run is None else None
    baseline_alignment = None
    n_att = min(cfg.eval.attention_images, len(test))
    masks = torch.as_tensor(test.data.masks[:n_att])
    if before is not None:
        baseline_alignment = attention_alignment(encoder, test.pixels[:n_att], test.captions[:n_att], masks)
    if from_run is None:
        tuned = tune(clip, train, cfg, progress)
        save_tuned(tuned, run_dir, cfg.tune.method)
    summary, raw = evaluate(encoder, tuned.head, test, cfg)
    alignment = attention_alignment(encoder, test.pixels[:n_att], test.captions[:n_att], masks)
    metrics = {
        "name": cfg.name, "seed": cfg.seed, "method": method, "commit": git_commit(),
        "versions": versions(), "device": device_name(clip.device), "model": clip.name,
        "trainable_parameters": tuned.trainable, "history": tuned.history, "results": summary,
        "attention": {"after": alignment["energy_pointing_game"],
                      "before": None if baseline_alignment is None else baseline_alignment["energy_pointing_game"]},
        "test_images": len(test), "train_images": len(train), "from_run": None if from_run is None else str(from_run),
        "wall_time_s": time.perf_counter() - start,
    }
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    np.savez_compressed(run_dir / "predictions.npz", **flat_predictions(raw, test.attributes))
    if cfg.figures:
        figures = run_dir / "figures"
        figures.mkdir(exist_ok=True)
        attention_figure(test, alignment["maps"], None if baseline_alignment is None else baseline_alignment["maps"],
                         figures / "attention.png", f"{cfg.name}, seed {cfg.seed}")
        if before is not None:
            tsne_figure(before, embeddings_for_tsne(encoder, test), test.vocabulary("shape") if "shape" in test.attributes
                        else test.vocabulary(test.attributes[0]), figures / "tsne.png", cfg.seed)
    metrics["wall_time_s"] = time.perf_counter() - start
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _run_one(args) -> dict:
    """``(cfg, skip_done, progress)``: a finished run (``metrics.json`` present) is read back."""
    cfg, skip_done, progress = args
    metrics = Path(cfg.out_dir) / cfg.name / f"seed{cfg.seed}" / "metrics.json"
    if skip_done and metrics.is_file():
        return json.loads(metrics.read_text())
    return run_reliability(cfg, progress=progress)


def run_seeds(cfg: ReliabilityConfig, seeds: int, first_seed: int = 0, jobs: int = 1, skip_done: bool = True,
              on_done=None) -> list[dict]:
    """Run ``cfg`` for seeds ``first_seed ..`` (``jobs`` processes of one thread each); finished runs
    (a ``metrics.json`` in the seed's folder) are read back, not repeated."""
    from lookright.train.sweep import run_in_processes

    if jobs > 1:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"threads": 1})})
    args = [(cfg.model_copy(update={"seed": s}), skip_done, False) for s in range(first_seed, first_seed + seeds)]
    return run_in_processes(_run_one, args, jobs, on_done)
