"""The comparison report: one self-contained HTML page and its Markdown twin.

``report/index.html`` embeds its figures as base64 PNGs (it opens from disk with no server);
``report/report.md`` links the same PNGs under ``report/figures/``; ``report/compare.json`` holds
every number. Significance marks compare each method with the reference method over shared seeds
(paired t-test): ``*`` p < 0.05, ``**`` p < 0.01.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from lookright.report.compare import compare, load_methods
from lookright.report.figures import faithfulness_figure, method_grid_figure

FIGURES = {
    "faithfulness": "faithfulness curves (mean over seeds)",
    "attention": "the same shifted-test images: ground-truth mask and each method's attention (true class)",
}


def _fmt(d: dict, digits: int) -> str:
    if d["mean"] is None:
        return "n/a"
    if d["std"] is None:
        return f"{d['mean']:.{digits}f}"
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"


def _mark(p: float | None) -> str:
    if p is None:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def _cells(result: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the methods x metrics table, marks against the reference."""
    ref = result["reference"]
    head = ["method", "seeds"] + [c["label"] + (" ↑" if c["higher_is_better"] else " ↓") for c in result["columns"]]
    rows = []
    for m in result["methods"]:
        row = [m["name"], str(len(m["seeds"]))]
        for c in result["columns"]:
            cell = _fmt(result["table"][m["name"]][c["key"]], c["digits"])
            if m["name"] != ref:
                test = result["pairs"][ref][m["name"]][c["key"]]
                cell += _mark(test["t_test_p"] if test else None)
            row.append(cell)
        rows.append(row)
    return head, rows


def _pvalue_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    ref = result["reference"]
    head = ["method vs " + ref, "metric", "mean difference", "relative gain", "paired t p", "Wilcoxon p"]
    rows = []
    for m in result["methods"]:
        if m["name"] == ref:
            continue
        for c in result["columns"]:
            t = result["pairs"][ref][m["name"]][c["key"]]
            if t is None:
                continue
            gain = "n/a" if t["relative_gain"] is None else f"{100 * t['relative_gain']:+.1f}%"
            rows.append([m["name"], c["label"], f"{t['mean_difference']:+.4f}", gain,
                         f"{t['t_test_p']:.3g}", f"{t['wilcoxon_p']:.3g}"])
    return head, rows


def _mcnemar_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    head = ["method vs " + result["reference"], "seed", "right only in reference", "right only in method", "McNemar p"]
    rows = [[name, str(t["seed"]), str(t["only_a"]), str(t["only_b"]), f"{t['p']:.3g}"]
            for name, tests in result["mcnemar_vs_reference"].items() for t in tests]
    return head, rows


def _markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(table_id: str, head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _intro(result: dict) -> str:
    s = result["settings"]
    return (f"Dataset {result['dataset']}, shifted test split; reference method {result['reference']}. "
            f"Localisation uses the true class's map against the ground-truth mask; faithfulness the predicted "
            f"class's map and probability, substrate `{s['substrate']}`, {s['steps']} deletion/insertion steps. "
            "Mean ± std over seeds; `*` p < 0.05, `**` p < 0.01 (paired t-test against the reference).")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555}code{background:#f5f5f5;padding:1px 3px}"""


def write_report(paths: list[Path], out: Path, reference: str | None = None, examples: int = 8,
                 removal_k: float = 0.1) -> dict:
    """Build ``out/index.html``, ``out/report.md``, ``out/compare.json`` and ``out/figures/*.png``."""
    result = compare(paths, reference, removal_k)
    methods = load_methods(paths)
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    title = f"{result['dataset']}: {', '.join(m.name for m in methods)}"
    faithfulness_figure(methods, out / "figures" / "faithfulness.png", title)
    shared = sorted(set.intersection(*(set(m.seeds) for m in methods)))
    pick = [(m.name, m.folders[m.seeds.index(shared[0])] if shared else m.folders[0]) for m in methods]
    seed_note = f"seed {shared[0]}" if shared else "each method's first seed"
    method_grid_figure(pick, out / "figures" / "attention.png", examples, f"{title} ({seed_note})")
    (out / "compare.json").write_text(json.dumps(result, indent=2))

    tables = {"metrics": _cells(result), "pvalues": _pvalue_rows(result), "mcnemar": _mcnemar_rows(result)}
    captions = {"metrics": "Methods x metrics", "pvalues": "Paired tests against the reference (over shared seeds)",
                "mcnemar": "McNemar tests on paired shifted-test predictions"}
    intro = _intro(result)

    md = [f"# lookright comparison: {result['dataset']}", "", intro, ""]
    for key, (head, rows) in tables.items():
        md += [f"## {captions[key]}", "", _markdown_table(head, rows), ""]
    for name, caption in FIGURES.items():
        md += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]
    (out / "report.md").write_text("\n".join(md))

    body = [f"<h1>lookright comparison: {html.escape(result['dataset'])}</h1>",
            "<p>" + html.escape(intro) + "</p>"]
    for key, (head, rows) in tables.items():
        body += [f"<h2>{captions[key]}</h2>", _html_table(key, head, rows)]
    for name, caption in FIGURES.items():
        data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
        body.append(f'<figure><img data-figure="{name}" alt="{html.escape(caption)}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    (out / "index.html").write_text(page)
    return result
