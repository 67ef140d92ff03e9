"""What ``lookright vlm summarize`` writes beside its Markdown table, atomically: ``summary.json``,
``pareto_<protocol>.png`` and ``index.html`` (tables, Pareto plots, each configuration's figures)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from lookright.report.page import CSS, _html_table
from lookright.atomic import write_json_atomic, write_text_atomic
from lookright.vlm.reliability.figures import pareto_figure
from lookright.vlm.reliability.summary import PROTOCOLS, attention_rows, protocol_rows


def _mean_std(d: dict) -> tuple[float, float]:
    return d["mean"], math.nan if d["std"] is None else d["std"]


def pareto_points(rows: list[dict]) -> list[dict]:
    """The rows as :func:`pareto_figure` reads them: ``(mean, std)`` of normal accuracy and Drop."""
    return [{"name": r["name"], "normal": _mean_std(r["normal"]), "drop": _mean_std(r["drop"])} for r in rows]


def _img(file: Path, caption: str) -> str:
    data = base64.b64encode(file.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(table: dict, runs: dict, folder: Path, reference: str) -> str:
    """Self-contained HTML: both protocols' tables, the Pareto plots in ``folder``, and each
    configuration's attention and t-SNE figures of its first seed (images embedded)."""
    body = ["<h1>lookright: visual reliability under conflicting text</h1>",
            "<p>Mean ± std over seeds. Drop = normal - attacked accuracy (points); TDI = share of attacked cases "
            f"that follow the conflicting text. Tests against {html.escape(reference)}: paired t-test over seeds on "
            "the average Drop, exact McNemar on pooled paired attacked cases.</p>"]
    for protocol in PROTOCOLS:
        body += [f"<h2>{protocol} protocol</h2>", _html_table(protocol, *protocol_rows(table[protocol], reference))]
        pareto = folder / f"pareto_{protocol}.png"
        if pareto.is_file():
            body.append(_img(pareto, f"normal accuracy against average Drop ({protocol})"))
    body += ["<h2>attention of the image tower (energy pointing game against the shape masks)</h2>",
             _html_table("attention", *attention_rows(table["attention"]))]
    for name, seeds in runs.items():
        first = Path(seeds[min(seeds)]["_dir"]) / "figures"
        for fig, caption in (("attention.png", "attention maps"), ("tsne.png", "t-SNE of image and caption embeddings")):
            if (first / fig).is_file():
                body.append(_img(first / fig, f"{name}, seed {min(seeds)}: {caption}"))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>visual reliability"
            f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def write_beside(table: dict, runs: dict, folder: Path, reference: str) -> None:
    """``summary.json``, the Pareto plots and ``index.html`` in ``folder``."""
    folder = Path(folder)
    write_json_atomic(folder / "summary.json", table)
    for protocol in PROTOCOLS:
        points = pareto_points(table[protocol])
        pareto_figure(points, folder / f"pareto_{protocol}.png", protocol)
    write_text_atomic(folder / "index.html", page(table, runs, folder, reference))
