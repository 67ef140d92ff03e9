"""Supervised summaries: mean ± sample std over seeds per (dataset, run name), and paired tests
against a reference run name. Only finished runs are read (see :mod:`lookright.runs.summary`)."""

from __future__ import annotations

from pathlib import Path

from lookright.runs.cli import plural
from lookright.runs.summary import Column, cell, describe_groups, group, load_finished, markdown, paired_against

KIND = "supervised"
COLUMNS = [
    Column("shifted test acc (%)", ("shifted_test_acc",), "{:.2f}"),
    Column("val acc (%)", ("val_acc",), "{:.2f}"),
    Column("counterfactual val acc (%)", ("val_counterfactual_acc",), "{:.2f}"),
    Column("attention on shortcut", ("attention_mass", "shortcut", "mean")),
    Column("attention on digit", ("attention_mass", "digit", "mean")),
    Column("input gradient on shortcut", ("input_gradient_mass", "shortcut", "mean")),
    Column("wall time / run (s)", ("wall_time_s",), "{:.0f}"),
]
SHIFTED = COLUMNS[0]
GAP = Column("gap val - shifted", ("-", "val_acc", "shifted_test_acc"), "{:.2f}")


def load_rows(root: str | Path) -> list[dict]:
    return load_finished(root, KIND, "supervised", "train some with `lookright train` or `lookright sweep`")


def _key(row: dict) -> tuple:
    return (row.get("dataset"), row.get("model", "?"), row["name"])


def summary_table(rows: list[dict]) -> str:
    """One row per (dataset, model, run name)."""
    groups = group(rows, _key)
    stats = describe_groups(groups, COLUMNS)
    body = [[*map(str, k), str(len(s["seeds"])), *(cell(s[c.title], c.fmt) for c in COLUMNS)]
            for k, s in stats.items()]
    return markdown(["dataset", "model", "name", "seeds", *(c.title for c in COLUMNS)], body)


def paired_table(rows: list[dict], reference_suffix: str = "-vanilla") -> str:
    """Each run name against the run of its dataset (and model) whose name ends with
    ``reference_suffix``, paired by seed: mean difference of shifted-test accuracy with its paired
    t-test and Wilcoxon p-values, and the gap ``val_acc - shifted_test_acc``."""
    groups = group(rows, _key)

    def reference_of(k: tuple) -> tuple | None:
        refs = [g for g in groups if g[:2] == k[:2] and g[2].endswith(reference_suffix)]
        return refs[0] if refs else None

    tests = paired_against(groups, reference_of, [SHIFTED])
    gaps = describe_groups(groups, [GAP])
    fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
    body = []
    for k, seeds in groups.items():
        cells = [*map(str, k), str(len(seeds)), cell(gaps[k][GAP.title], GAP.fmt)]
        t = tests.get(k)
        if t is not None and SHIFTED.title in t:
            s = t[SHIFTED.title]
            cells += [f"{t['reference'][2]} ({plural(len(t['seeds']), 'seed')})", fmt(s["mean_difference"]), fmt(s["t_test_p"]),
                      fmt(s["wilcoxon_p"])]
        else:
            cells += ["(reference)" if reference_of(k) == k else "no reference", "", "", ""]
        body.append(cells)
    text = markdown(["dataset", "model", "name", "seeds", "gap val - shifted", "vs reference", "mean difference",
                     "t-test p", "Wilcoxon p"], body)
    if any(len(t["seeds"]) < 2 for t in tests.values()):
        text += ("\np-values are n/a where fewer than 2 seeds are paired: run more seeds, "
                 "e.g. `lookright sweep CONFIG --seeds 5`.\n")
    if not tests:
        text += f"\nno run name has a reference here: none ends with {reference_suffix!r} in its dataset and model.\n"
    return text
