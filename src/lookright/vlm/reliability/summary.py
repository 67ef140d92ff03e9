"""Tables over seeds: ``lookright vlm summarize ROOT`` reads ``ROOT/<name>/seed*/``.

Per configuration and protocol: normal accuracy, Drop per strategy and average, TDI, as mean ±
std over seeds. Against the ``baseline`` configuration (same seeds): relative Drop reduction
``1 - Drop_config / Drop_baseline`` (of the seed means), a paired t-test over seeds on the
average Drop, and an exact McNemar test on the pooled paired attacked-case correctness (every
strategy, image and seed; the same images per seed for every configuration).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lookright.errors import DataError
from lookright.metrics.statistics import describe, mcnemar, paired_tests
from lookright.vlm.reliability.figures import pareto_figure

PROTOCOLS = ("classification", "matching")


def load_runs(root: str | Path) -> dict[str, dict[int, dict]]:
    root = Path(root)
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(root.glob("*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        m["predictions"] = dict(np.load(path.parent / "predictions.npz"))
        runs.setdefault(m["name"], {})[m["seed"]] = m
    if not runs:
        raise DataError(f"no reliability runs under {root} (expected <name>/seed<k>/metrics.json); "
                        "run `lookright vlm tune CONFIG --seeds N` first")
    return runs


def attacked_vector(predictions: dict, protocol: str) -> np.ndarray:
    keys = sorted(k for k in predictions if k.startswith(f"{protocol}/") and "/normal" not in k)
    return np.concatenate([predictions[k].reshape(-1) for k in keys])


def summarize(root: str | Path, baseline: str = "baseline", out: str | Path | None = None) -> dict:
    runs = load_runs(root)
    table: dict = {}
    for protocol in PROTOCOLS:
        rows = []
        for name, seeds in runs.items():
            res = [seeds[s]["results"][protocol] for s in sorted(seeds)]
            strategies = list(res[0]["drop"])
            row = {"name": name, "seeds": sorted(seeds), "n": len(res),
                   "normal": _ms([r["normal_accuracy"] for r in res]),
                   "drop": _ms([r["drop_average"] for r in res]),
                   "drop_per_strategy": {s: _ms([r["drop"][s] for r in res]) for s in strategies},
                   "tdi": _ms([r["tdi_average"] for r in res])}
            if baseline in runs and name != baseline:
                common = sorted(set(seeds) & set(runs[baseline]))
                if common:
                    base = [runs[baseline][s]["results"][protocol]["drop_average"] for s in common]
                    mine = [seeds[s]["results"][protocol]["drop_average"] for s in common]
                    row["relative_drop_reduction"] = 1 - np.mean(mine) / np.mean(base) if np.mean(base) else float("nan")
                    row["t_test_p"] = paired_tests(mine, base)["t_test_p"] if len(common) > 1 else float("nan")
                    a = np.concatenate([attacked_vector(runs[baseline][s]["predictions"], protocol) for s in common])
                    b = np.concatenate([attacked_vector(seeds[s]["predictions"], protocol) for s in common])
                    row["mcnemar"] = mcnemar(a, b)
            rows.append(row)
        table[protocol] = rows
    table["attention"] = [{"name": name, "n": len(seeds), **{
        f"{kind}_{when}": _ms([seeds[s]["attention"][when][kind] for s in seeds if seeds[s]["attention"][when]])
        for when in ("before", "after") for kind in ("gradcam", "rollout")
        if all(seeds[s]["attention"][when] and kind in seeds[s]["attention"][when] for s in seeds)}}
        for name, seeds in runs.items()]
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(table, baseline))
        for protocol in PROTOCOLS:
            pareto_figure(table[protocol], out.parent / f"pareto_{protocol}.png", protocol)
        (out.parent / "summary.json").write_text(json.dumps(table, indent=2, default=float))
        write_page(table, runs, Path(root), out.parent / "index.html", baseline)
    return table


def _rows_html(rows: list[dict], baseline: str) -> tuple[list[str], list[list[str]]]:
    strategies = list(rows[0]["drop_per_strategy"])
    head = ["config", "seeds", "normal acc. (%)", *(f"Drop {s}" for s in strategies), "avg Drop", "TDI",
            f"rel. reduction vs {baseline}", "t-test p", "McNemar p"]
    body = []
    for r in rows:
        body.append([r["name"], str(r["n"]), _fmt(r["normal"]), *(_fmt(r["drop_per_strategy"][s]) for s in strategies),
                     _fmt(r["drop"]), _fmt(r["tdi"], 3),
                     f"{100 * r['relative_drop_reduction']:.1f}%" if "relative_drop_reduction" in r else "-",
                     f"{r['t_test_p']:.2g}" if "t_test_p" in r else "-",
                     _p(r["mcnemar"]["p"]) if "mcnemar" in r else "-"])
    return head, body


def write_page(table: dict, runs: dict, root: Path, path: Path, baseline: str) -> None:
    """Self-contained HTML page: both protocols' tables, the Pareto plots, and each configuration's
    attention and t-SNE figures of its first seed (images embedded)."""
    import base64
    import html

    from lookright.report.page import CSS, _html_table

    def img(file: Path, caption: str) -> str:
        data = base64.b64encode(file.read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    body = ["<h1>lookright: visual reliability under conflicting text</h1>",
            "<p>Mean ± std over seeds. Drop = normal - attacked accuracy (points); TDI = share of attacked cases "
            f"that follow the conflicting text. Tests against {html.escape(baseline)}: paired t-test over seeds on "
            "the average Drop, exact McNemar on pooled paired attacked cases.</p>"]
    for protocol in PROTOCOLS:
        body += [f"<h2>{protocol} protocol</h2>", _html_table(protocol, *_rows_html(table[protocol], baseline))]
        pareto = path.parent / f"pareto_{protocol}.png"
        if pareto.is_file():
            body.append(img(pareto, f"normal accuracy against average Drop ({protocol})"))
    body += ["<h2>attention of the image tower (energy pointing game against the shape masks)</h2>",
             _html_table("attention", *_attention_rows(table["attention"]))]
    for name, seeds in runs.items():
        first = root / name / f"seed{min(seeds)}" / "figures"
        for fig, caption in (("attention.png", "attention maps"), ("tsne.png", "t-SNE of image and caption embeddings")):
            if (first / fig).is_file():
                body.append(img(first / fig, f"{name}, seed {min(seeds)}: {caption}"))
    path.write_text(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>visual reliability"
                    f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def _p(p: float) -> str:
    return "< 1e-300" if p == 0 else f"{p:.2g}"  # an exact binomial p below the smallest double


def _ms(values) -> tuple[float, float]:
    d = describe(values)
    return (d["mean"], d["std"] if d["std"] is not None else float("nan"))


def _fmt(ms: tuple[float, float], digits: int = 1) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def markdown(table: dict, baseline: str = "baseline") -> str:
    from lookright.report.page import _markdown_table

    lines = []
    for protocol in PROTOCOLS:
        lines += [f"### {protocol} protocol", "", _markdown_table(*_rows_html(table[protocol], baseline)), ""]
    lines += ["### attention of the image tower: energy pointing game against the shape masks", "",
              _markdown_table(*_attention_rows(table["attention"])), ""]
    return "\n".join(lines)


def _attention_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    keys = ("gradcam_before", "gradcam_after", "rollout_before", "rollout_after")
    head = ["config", "seeds", *(k.replace("_", " (") + ")" for k in keys)]
    return head, [[r["name"], str(r["n"]), *(_fmt(r[k], 3) if k in r else "-" for k in keys)] for r in rows]
