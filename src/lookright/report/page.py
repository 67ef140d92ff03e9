"""The comparison report: one self-contained HTML page and its Markdown twin.

The page opens with the figures a reader wants first (accuracy per method with error bars over
seeds; the same shifted-test images with their masks and each method's attention), then a compact
methods x metrics table whose cells never wrap, then the details (every metric, paired tests,
McNemar tests, faithfulness curves).

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
from lookright.report.figures import accuracy_figure, faithfulness_figure, method_grid_figure
from lookright.runs.cli import plural

#: figures in page order: the first two open the page, the rest sit in the details
FIGURES = {
    "accuracy": "accuracy per method: in-distribution validation and shifted test (mean ± std over seeds, "
                "dots: seeds)",
    "attention": "the same shifted-test images: ground-truth mask and each method's attention (true class), "
                 "mask outlined",
    "faithfulness": "faithfulness curves (mean over seeds)",
}
TOP_FIGURES = ("accuracy", "attention")
SUMMARY = ("shifted_test_acc", "val_acc", "energy_pointing_game", "iou", "shortcut_mass", "deletion_auc")


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


def _cells(result: dict, keys: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the methods x metrics table (the columns in ``keys``, else all), marks
    against the reference."""
    ref = result["reference"]
    cols = [c for c in result["columns"] if keys is None or c["key"] in keys]
    head = ["method", "extractor", "seeds"] + [c["label"] + (" ↑" if c["higher_is_better"] else " ↓") for c in cols]
    rows = []
    for m in result["methods"]:
        row = [m["name"], m["extractor"], str(len(m["seeds"]))]
        for c in cols:
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
    return f'<div class="scroll"><table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_figure(out: Path, name: str) -> str:
    data = base64.b64encode((out / "figures" / f"{name}.png").read_bytes()).decode()
    caption = html.escape(FIGURES[name])
    return (f'<figure><img data-figure="{name}" alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _md_figure(name: str) -> list[str]:
    return [f"![{FIGURES[name]}](figures/{name}.png)", "", f"*{FIGURES[name]}*", ""]


def _intro(result: dict) -> str:
    s = result["settings"]
    return (f"Dataset {result['dataset']}, shifted test split; reference method {result['reference']}. "
            f"Localisation uses the true class's map against the ground-truth mask; faithfulness the predicted "
            f"class's map and probability, substrate `{s['substrate']}`, {s['steps']} deletion/insertion steps.")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.scroll{overflow-x:auto}
.figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.figures figure{margin:0;flex:1 1 560px}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}code{background:#f5f5f5;padding:1px 3px}
.note{font-size:13px;color:#555}"""


def write_report(paths: list[Path], out: Path, reference: str | None = None, examples: int = 8,
                 removal_k: float = 0.1, extractor: str | None = None) -> dict:
    """Build ``out/index.html``, ``out/report.md``, ``out/compare.json`` and ``out/figures/*.png``;
    ``extractor``: read every run's attention metrics under this extractor (default: their own,
    which must agree)."""
    result = compare(paths, reference, removal_k, extractor)
    methods = load_methods(paths, extractor)
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    title = f"{result['dataset']}: {', '.join(m.name for m in methods)}"
    accuracy_figure(methods, out / "figures" / "accuracy.png", f"{result['dataset']}, {_seeds_note(methods)}")
    faithfulness_figure(methods, out / "figures" / "faithfulness.png", title)
    shared = sorted(set.intersection(*(set(m.seeds) for m in methods)))
    pick = [(m.name, m.folders[m.seeds.index(shared[0])] if shared else m.folders[0]) for m in methods]
    runs = {str(f): r for m in methods for f, r in zip(m.folders, m.runs)}
    grid = [(name, folder / runs[str(folder)]["evaluation"].get("examples", "eval/examples.npz"))
            for name, folder in pick]
    seed_note = f"seed {shared[0]}" if shared else "each method's first seed"
    method_grid_figure(grid, out / "figures" / "attention.png", examples, f"{title} ({seed_note})")
    (out / "compare.json").write_text(json.dumps(result, indent=2))

    summary = _cells(result, SUMMARY)
    details = {"metrics": _cells(result), "pvalues": _pvalue_rows(result), "mcnemar": _mcnemar_rows(result)}
    captions = {"metrics": "Every metric", "pvalues": "Paired tests against the reference (over shared seeds)",
                "mcnemar": "McNemar tests on paired shifted-test predictions"}
    empty = {"pvalues": "No paired test: they need at least 2 seeds shared with the reference.",
             "mcnemar": "No McNemar test: no seed shared with the reference has saved predictions."}
    lead = (f"Extractor {result['extractor']}; reference method {result['reference']}; mean ± std over seeds; "
            "`*` p < 0.05, `**` p < 0.01 (paired t-test against the reference).")
    intro = _intro(result)

    md = [f"# lookright comparison: {result['dataset']}", "", lead, ""]
    for name in TOP_FIGURES:
        md += _md_figure(name)
    md += ["## Summary", "", _markdown_table(*summary), "", "## Details", "", intro, ""]
    for key, (head, rows) in details.items():
        md += [f"### {captions[key]}", "", _markdown_table(head, rows) if rows else empty[key], ""]
    for name in [n for n in FIGURES if n not in TOP_FIGURES]:
        md += _md_figure(name)
    (out / "report.md").write_text("\n".join(md))

    body = [f"<h1>lookright comparison: {html.escape(result['dataset'])}</h1>",
            f'<p class="note">{html.escape(lead)}</p>',
            '<div class="figures">' + "".join(_html_figure(out, n) for n in TOP_FIGURES) + "</div>",
            "<h2>Summary</h2>", _html_table("summary", *summary),
            "<h2>Details</h2>", "<p>" + html.escape(intro) + "</p>"]
    for key, (head, rows) in details.items():
        body += [f"<h3>{captions[key]}</h3>",
                 _html_table(key, head, rows) if rows else f'<p class="note">{html.escape(empty[key])}</p>']
    body += [_html_figure(out, n) for n in FIGURES if n not in TOP_FIGURES]
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    (out / "index.html").write_text(page)
    return result


def _seeds_note(methods) -> str:
    low, high = min(len(m.seeds) for m in methods), max(len(m.seeds) for m in methods)
    return (plural(low, "seed") if low == high else f"{low} to {high} seeds") + " per method"
