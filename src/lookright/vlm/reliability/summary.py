"""Tables over seeds: ``lookright vlm summarize ROOT`` reads every finished ``reliability`` run under ROOT.

Per configuration (run name) and protocol: normal accuracy, Drop per strategy and average, TDI,
as mean ± sample std over seeds (:func:`lookright.metrics.statistics.describe`). Against the
``reference`` configuration (same seeds): relative Drop reduction ``1 - Drop_config / Drop_reference``
(of the seed means), a paired t-test over seeds on the average Drop, and an exact McNemar test on
the pooled paired attacked-case correctness (every strategy, image and seed; the same images per
seed for every configuration). Evaluations of a tuned run (``vlm eval --run``, kind
``reliability-eval``) are not summarised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookright.errors import RunError
from lookright.metrics.statistics import describe, mcnemar, paired_tests
from lookright.runs.summary import cell, group, load_finished, markdown as table_markdown
from lookright.vlm.reliability.run import KIND

PROTOCOLS = ("classification", "matching")
ATTENTION = ("gradcam_before", "gradcam_after", "rollout_before", "rollout_after")


def _checked(m: dict) -> dict:
    """A finished run's metrics with its predictions; a RunError when either is not a reliability result."""
    where = Path(m["_dir"])
    missing = [k for k in ("name", "seed", "results", "attention") if k not in m]
    missing += [p for p in PROTOCOLS if p not in m.get("results", {})]
    if missing:
        raise RunError(f"{where / 'metrics.json'} is not a reliability result (no {', '.join(missing)}); "
                       f"delete {where} and run it again")
    try:
        with np.load(where / "predictions.npz") as saved:
            m["predictions"] = dict(saved)
    except (OSError, ValueError) as exc:
        raise RunError(f"{where / 'predictions.npz'} cannot be read ({exc}); delete {where} and run it again") from None
    return m


def load_runs(root: str | Path) -> dict[str, dict[int, dict]]:
    """``{name: {seed: metrics}}`` of the finished reliability runs under ``root``."""
    rows = load_finished(root, KIND, "reliability", "run `lookright vlm eval CONFIG` or `lookright vlm tune CONFIG` first")
    return {k[0]: seeds for k, seeds in group((_checked(m) for m in rows), lambda m: (m["name"],)).items()}


def attacked_vector(predictions: dict, protocol: str) -> np.ndarray:
    keys = sorted(k for k in predictions if k.startswith(f"{protocol}/") and "/normal" not in k)
    return np.concatenate([predictions[k].reshape(-1) for k in keys])


def _against(seeds: dict[int, dict], ref: dict[int, dict], protocol: str) -> dict:
    common = sorted(set(seeds) & set(ref))
    if not common:
        return {}
    base = [ref[s]["results"][protocol]["drop_average"] for s in common]
    mine = [seeds[s]["results"][protocol]["drop_average"] for s in common]
    a = np.concatenate([attacked_vector(ref[s]["predictions"], protocol) for s in common])
    b = np.concatenate([attacked_vector(seeds[s]["predictions"], protocol) for s in common])
    return {"relative_drop_reduction": float(1 - np.mean(mine) / np.mean(base)) if np.mean(base) else None,
            "t_test_p": paired_tests(mine, base)["t_test_p"], "mcnemar": mcnemar(a, b)}


def summary_table(runs: dict[str, dict[int, dict]], reference: str = "baseline") -> dict:
    """``{protocol: [row per configuration], "attention": [...]}``; statistics are ``describe`` dicts."""
    table: dict = {}
    for protocol in PROTOCOLS:
        rows = []
        for name, seeds in runs.items():
            res = [seeds[s]["results"][protocol] for s in sorted(seeds)]
            row = {"name": name, "seeds": sorted(seeds), "n": len(res),
                   "normal": describe([r["normal_accuracy"] for r in res]),
                   "drop": describe([r["drop_average"] for r in res]),
                   "drop_per_strategy": {s: describe([r["drop"][s] for r in res]) for s in res[0]["drop"]},
                   "tdi": describe([r["tdi_average"] for r in res])}
            if reference in runs and name != reference:
                row.update(_against(seeds, runs[reference], protocol))
            rows.append(row)
        table[protocol] = rows
    table["attention"] = [{"name": name, "n": len(seeds), **{
        f"{kind}_{when}": describe([seeds[s]["attention"][when][kind] for s in seeds])
        for when in ("before", "after") for kind in ("gradcam", "rollout")
        if all(seeds[s]["attention"][when] and kind in seeds[s]["attention"][when] for s in seeds)}}
        for name, seeds in runs.items()]
    return table


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "< 1e-300" if p == 0 else f"{p:.2g}"  # an exact binomial p below the smallest double


def protocol_rows(rows: list[dict], reference: str) -> tuple[list[str], list[list[str]]]:
    strategies = list(rows[0]["drop_per_strategy"])
    head = ["config", "seeds", "normal acc. (%)", *(f"Drop {s}" for s in strategies), "avg Drop", "TDI",
            f"rel. reduction vs {reference}", "t-test p", "McNemar p"]
    body = []
    for r in rows:
        reduction = r.get("relative_drop_reduction")
        body.append([r["name"], str(r["n"]), cell(r["normal"], "{:.1f}"),
                     *(cell(r["drop_per_strategy"][s], "{:.1f}") for s in strategies),
                     cell(r["drop"], "{:.1f}"), cell(r["tdi"], "{:.3f}"),
                     "-" if reduction is None else f"{100 * reduction:.1f}%",
                     _p(r.get("t_test_p")), _p(r["mcnemar"]["p"]) if "mcnemar" in r else "-"])
    return head, body


def attention_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["config", "seeds", *(k.replace("_", " (") + ")" for k in ATTENTION)]
    return head, [[r["name"], str(r["n"]), *(cell(r[k], "{:.3f}") if k in r else "-" for k in ATTENTION)] for r in rows]


def markdown(table: dict, reference: str = "baseline") -> str:
    lines = []
    for protocol in PROTOCOLS:
        lines += [f"### {protocol} protocol", "", table_markdown(*protocol_rows(table[protocol], reference))]
    lines += ["### attention of the image tower: energy pointing game against the shape masks", "",
              table_markdown(*attention_rows(table["attention"]))]
    return "\n".join(lines)
