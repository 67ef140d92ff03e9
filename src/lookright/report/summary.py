"""Summaries over seeds: mean and sample standard deviation of run metrics, as Markdown."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

COLUMNS = {
    "shifted_test_acc": "shifted test acc (%)",
    "val_acc": "val acc (%)",
    "val_counterfactual_acc": "counterfactual val acc (%)",
    "shortcut_mass": "attention on shortcut",
    "digit_mass": "attention on digit",
    "shortcut_grad_mass": "input gradient on shortcut",
    "wall_time_s": "wall time / run (s)",
}


def read_metrics(run_dirs: list[Path]) -> list[dict]:
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.json"
        if path.is_file():
            m = json.loads(path.read_text())
            if "shifted_test_acc" in m:
                mass = m.get("attention_mass", {})
                m["shortcut_mass"] = (mass.get("shortcut") or {}).get("mean")
                m["digit_mass"] = (mass.get("digit") or {}).get("mean")
                m["shortcut_grad_mass"] = ((m.get("input_gradient_mass") or {}).get("shortcut") or {}).get("mean")
                rows.append(m)
    return rows


def find_runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).rglob("metrics.json"))


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[dict], group_by: tuple[str, ...] = ("dataset", "name")) -> list[dict]:
    """One entry per group: ``{group keys, n, seeds, column: (mean, std) | None}``."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(k) for k in group_by)].append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        entry = dict(zip(group_by, key, strict=True))
        entry["n"] = len(members)
        entry["seeds"] = sorted(m["seed"] for m in members)
        for col in COLUMNS:
            values = [m[col] for m in members if m.get(col) is not None]
            entry[col] = mean_std(values) if values else None
        out.append(entry)
    return out


def markdown_table(summary: list[dict], group_by: tuple[str, ...] = ("dataset", "name")) -> str:
    head = [*group_by, "seeds", *COLUMNS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in summary:
        cells = [str(entry[k]) for k in group_by] + [str(entry["n"])]
        for col in COLUMNS:
            value = entry[col]
            if value is None:
                cells.append("n/a")
            elif col.endswith("mass"):
                cells.append(f"{value[0]:.3f} ± {value[1]:.3f}")
            else:
                cells.append(f"{value[0]:.2f} ± {value[1]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(rows: list[dict], reference_suffix: str = "-vanilla",
                 metric: str = "shifted_test_acc") -> str:
    """Each run name against the run of its dataset whose name ends with ``reference_suffix``,
    paired by seed: mean difference of ``metric``, paired t-test and Wilcoxon p-values, and the
    gap ``val_acc - metric`` (how far the shift pulls the method below its own validation)."""
    from lookright.metrics.statistics import paired_tests

    by: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for row in rows:
        by[(row["dataset"], row["name"])][row["seed"]] = row
    lines = ["| dataset | name | seeds | gap val - shifted | vs reference | mean difference | t-test p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|"]
    for (dataset, name), seeds in sorted(by.items()):
        gaps = [r["val_acc"] - r[metric] for r in seeds.values()]
        gap = mean_std(gaps)
        refs = [n for (d, n) in by if d == dataset and n.endswith(reference_suffix)]
        cells = [dataset, name, str(len(seeds)), f"{gap[0]:.2f} ± {gap[1]:.2f}"]
        if refs and refs[0] != name:
            ref = by[(dataset, refs[0])]
            common = sorted(set(seeds) & set(ref))
            test = paired_tests([seeds[s][metric] for s in common], [ref[s][metric] for s in common])
            fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
            cells += [f"{refs[0]} ({len(common)} seeds)", fmt(test["mean_difference"]), fmt(test["t_test_p"]),
                      fmt(test["wilcoxon_p"])]
        else:
            cells += ["(reference)" if refs else "no reference", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
