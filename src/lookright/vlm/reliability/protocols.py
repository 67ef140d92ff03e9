"""The two protocols, and Drop and TDI.

**Matching.** For image ``i`` the model scores candidate captions by cosine similarity and picks
the best. Normal: candidates = its true caption + ``K`` distractors (captions of other images that
differ in at least one evaluated attribute). Under strategy ``s``: the same candidates plus the
conflicting caption ``c_s(i)``. Correct = the true caption wins. TDI = share of attacked cases in
which the conflicting caption wins.

**Text-conditioned classification.** :class:`AttributeHead` predicts each evaluated attribute
from the joint embedding of the image and a caption. Normal: the true caption. Under a swap
strategy on attribute ``a``: the conflicting caption, scored on attribute ``a``; under
``random_text``: an unrelated sentence, scored on every attribute. TDI = share of attacked
cases in which the prediction equals the value the conflicting caption names (swaps only).

For both: ``Drop_s = acc_normal_s - acc_attacked_s`` in points, where ``acc_normal_s`` is the
normal accuracy on the same cases (the attacked attribute for a swap, all attributes for
random_text), and the average Drop is the mean over strategies. Normal accuracy (the headline)
is the mean over evaluated attributes (classification) or the matching accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lookright.vlm.reliability.conflicts import SWAPPED
from lookright.vlm.reliability.encoder import ClipEncoder
from lookright.vlm.reliability.head import AttributeHead
from lookright.vlm.reliability.pairs import ReliabilitySet


def drop(normal_correct, attacked_correct) -> float:
    """``100 * (mean(normal) - mean(attacked))`` over the same cases, in points."""
    n, a = np.asarray(normal_correct, dtype=float), np.asarray(attacked_correct, dtype=float)
    if n.shape != a.shape or n.size == 0:
        raise ValueError(f"Drop needs paired, non-empty cases; got shapes {n.shape} and {a.shape}")
    return float(100 * (n.mean() - a.mean()))


def tdi(predictions, conflicting) -> float:
    """Text dependency index: share of attacked cases whose prediction is what the text says."""
    p, c = np.asarray(predictions), np.asarray(conflicting)
    if p.shape != c.shape or p.size == 0:
        raise ValueError(f"TDI needs paired, non-empty cases; got shapes {p.shape} and {c.shape}")
    return float((p == c).mean())


@dataclass
class TestEmbeddings:
    """L2-normalised embeddings of a test set, computed once and shared by both protocols."""

    image: torch.Tensor  # (N, D)
    true: torch.Tensor  # (N, D), each image's own caption
    distractors: torch.Tensor  # (N, K, D)
    conflicts: dict[str, torch.Tensor]  # strategy -> (N, D)


@torch.no_grad()
def embed_set(encoder: ClipEncoder, ds: ReliabilitySet, strategies: list[str], batch: int = 512) -> TestEmbeddings:
    k = len(ds.distractors[0])
    distractors = encoder.text_batched([c for cs in ds.distractors for c in cs], batch).view(len(ds), k, -1)
    return TestEmbeddings(encoder.image_batched(ds.pixels.to(encoder.clip.device), batch),
                          encoder.text_batched(ds.captions, batch), distractors,
                          {s: encoder.text_batched([c.caption for c in ds.conflicts[s]], batch) for s in strategies})


@torch.no_grad()
def matching(emb: TestEmbeddings, strategies: list[str]) -> dict:
    """Per-image correctness (normal and per strategy) and conflict picks; see the module docstring."""
    candidates = torch.cat([emb.true[:, None], emb.distractors], dim=1)  # column 0 is the true caption
    base = torch.einsum("nd,nkd->nk", emb.image, candidates)
    out = {"normal": (base.argmax(dim=1) == 0).cpu().numpy(), "attacked": {}, "followed": {}}
    for s in strategies:
        scores = torch.cat([base, (emb.image * emb.conflicts[s]).sum(dim=-1, keepdim=True)], dim=1)
        pick = scores.argmax(dim=1)
        out["attacked"][s] = (pick == 0).cpu().numpy()
        out["followed"][s] = (pick == base.shape[1]).cpu().numpy()
    return out


@torch.no_grad()
def classification(emb: TestEmbeddings, head: AttributeHead, ds: ReliabilitySet, strategies: list[str]) -> dict:
    head = head.eval()

    def predict(text):
        return {a: p.cpu() for a, p in head.predict(emb.image, text).items()}

    normal = predict(emb.true)
    out = {"normal": {a: (normal[a] == ds.labels[a]).numpy() for a in ds.attributes},
           "attacked": {}, "followed": {}, "predictions": {"normal": {a: p.numpy() for a, p in normal.items()}}}
    for s in strategies:
        pred = predict(emb.conflicts[s])
        out["predictions"][s] = {a: p.numpy() for a, p in pred.items()}
        if s in SWAPPED:
            a = SWAPPED[s]
            if a not in ds.attributes:
                continue
            out["attacked"][s] = (pred[a] == ds.labels[a]).numpy()
            out["followed"][s] = (pred[a] == ds.conflict_labels(s)).numpy()
        else:
            out["attacked"][s] = np.stack([(pred[a] == ds.labels[a]).numpy() for a in ds.attributes], axis=1)
    return out


def summarise(result: dict, protocol: str, attributes: list[str]) -> dict:
    """Accuracies (%), Drop per strategy and average, TDI per swap strategy and average."""
    if protocol == "matching":
        normal = result["normal"]
        normal_acc = 100 * float(normal.mean())
        reference = {s: normal for s in result["attacked"]}
    else:
        per_attr = result["normal"]
        normal_acc = 100 * float(np.mean([per_attr[a].mean() for a in attributes]))
        all_attrs = np.stack([per_attr[a] for a in attributes], axis=1)
        reference = {s: (per_attr[SWAPPED[s]] if s in SWAPPED else all_attrs) for s in result["attacked"]}
    out = {"normal_accuracy": normal_acc, "attacked_accuracy": {}, "drop": {}, "tdi": {}}
    for s, attacked in result["attacked"].items():
        out["attacked_accuracy"][s] = 100 * float(np.mean(attacked))
        out["drop"][s] = drop(reference[s], attacked)
        if s in result["followed"]:
            out["tdi"][s] = float(np.mean(result["followed"][s]))
    out["drop_average"] = float(np.mean(list(out["drop"].values()))) if out["drop"] else float("nan")
    out["tdi_average"] = float(np.mean(list(out["tdi"].values()))) if out["tdi"] else float("nan")
    if protocol == "classification":
        out["normal_accuracy_per_attribute"] = {a: 100 * float(result["normal"][a].mean()) for a in attributes}
    return out
