"""How well a score computed without the shifted test set ranks models by shifted accuracy.

For every run (and, separately, every epoch of every run) it pairs a validation score with the
true shifted-test accuracy and reports Spearman's rank correlation per benchmark and over all
runs pooled. Scores: ``val_counterfactual_acc`` (accuracy on in-distribution validation images
whose non-mask pixels come from another image, of any class; :mod:`lookright.metrics.counterfactual`)
against plain in-distribution ``val_acc``. A score that ranks with Spearman near 1 can choose
lambda, E_attn and the epoch without ever seeing the shift.
"""

from __future__ import annotations

from collections import defaultdict

from scipy.stats import spearmanr

SCORES = {"val_counterfactual_acc": "val_cf_acc", "val_acc": "val_acc"}  # run key -> history key


def _rho(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return None
    return float(spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic)


def selection_study(rows: list[dict]) -> list[dict]:
    """One entry per benchmark plus ``"all"``: ``{dataset, runs, epochs, <score>_runs, <score>_epochs}``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["dataset"]].append(row)
    groups["all"] = list(rows)
    out = []
    for dataset, members in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        entry = {"dataset": dataset, "runs": len(members),
                 "epochs": sum(len(m.get("history", [])) for m in members)}
        for key, hist_key in SCORES.items():
            entry[f"{key}_runs"] = _rho([(m[key], m["shifted_test_acc"]) for m in members if m.get(key) is not None])
            entry[f"{key}_epochs"] = _rho([(h[hist_key], h["test_acc"]) for m in members
                                           for h in m.get("history", []) if h.get(hist_key) is not None])
        out.append(entry)
    return out


def selection_table(study: list[dict]) -> str:
    head = ["benchmark", "runs", "epochs", "Spearman cf-val (runs)", "Spearman cf-val (epochs)",
            "Spearman val (runs)", "Spearman val (epochs)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for e in study:
        lines.append(f"| {e['dataset']} | {e['runs']} | {e['epochs']} | {fmt(e['val_counterfactual_acc_runs'])} | "
                     f"{fmt(e['val_counterfactual_acc_epochs'])} | {fmt(e['val_acc_runs'])} | {fmt(e['val_acc_epochs'])} |")
    return "\n".join(lines) + "\n"
