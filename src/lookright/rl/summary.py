"""RL tables over seeds: mean ± sample std per method (run name) and paired tests against a
reference method. Only finished runs of kind ``rl`` are read (see :mod:`lookright.runs.summary`)."""

from __future__ import annotations

import os
from pathlib import Path

from lookright.errors import ConfigError
from lookright.rl.video import VIDEOS
from lookright.runs.summary import Column, cell, describe_groups, group, load_finished, markdown, paired_against

KIND = "rl"
BASE_COLUMNS = [
    Column("train return", ("evaluation", "train_levels", "return")),
    Column("train success", ("evaluation", "train_levels", "success")),
    Column("test return", ("evaluation", "test_levels", "return")),
    Column("test success", ("evaluation", "test_levels", "success")),
    Column("energy PG", ("evaluation", "alignment", "energy_pointing_game", "mean")),
    Column("IoU", ("evaluation", "alignment", "iou", "mean")),
    Column("on cue", ("evaluation", "alignment", "cue_energy", "mean")),
]


def columns(k: str = "0.1") -> list[Column]:
    """The base columns, the faithfulness columns at masked fraction ``k``, and the wall time."""
    f = ("evaluation", "faithfulness", k)
    return BASE_COLUMNS + [
        Column(f"Δp top-{k}", (*f, "prob_drop_top")),
        Column(f"Δp random-{k}", (*f, "prob_drop_random")),
        Column(f"faithfulness-{k}", (*f, "-", "prob_drop_top", "prob_drop_random")),
        Column(f"return top-{k}", (*f, "return_top")),
        Column(f"return random-{k}", (*f, "return_random")),
        Column("return random - top", (*f, "-", "return_random", "return_top")),
        Column("wall time / run (s)", ("wall_time_s",), "{:.0f}"),
    ]


def load_rows(root: str | Path) -> list[dict]:
    return load_finished(root, KIND, "RL", "train some with `lookright rl train CONFIG`")


def summarize_runs(rows: list[dict], reference: str | None = None, k: str = "0.1") -> dict:
    """Mean ± std per method and column; paired tests of each method against ``reference``
    (default: the method whose name contains 'vanilla') on the seeds both have."""
    fractions = sorted({f for r in rows for f in (r.get("evaluation") or {}).get("faithfulness", {})})
    if k not in fractions:
        raise ConfigError(f"--k {k}: no run was evaluated at that masked fraction; evaluated: {', '.join(fractions)}")
    cols = columns(k)
    groups = group(rows, lambda r: (r["name"],))
    names = [key[0] for key in groups]
    if reference is not None and reference not in names:
        raise ConfigError(f"--reference {reference} is not a run name here; the names are {', '.join(names)}")
    reference = reference or next((n for n in names if "vanilla" in n), None)
    stats = describe_groups(groups, cols)
    tests = paired_against(groups, lambda _key: (reference,), cols)
    videos = {key[0]: next((str(Path(r["_dir"]) / VIDEOS["test"]) for _, r in sorted(members.items())
                            if (Path(r["_dir"]) / VIDEOS["test"]).is_file()), None) for key, members in groups.items()}
    return {"reference": reference, "k": k, "videos": videos,
            "methods": {key[0]: s for key, s in stats.items()},
            "paired_tests": {key[0]: {c.title: t[c.title] for c in cols if c.title in t} for key, t in tests.items()}}


def summary_markdown(summary: dict, out: Path | None = None) -> str:
    """One row per method; ``(p=...)``: paired t-test against the reference; then a link per method
    to its lowest seed's test-level episode GIF (relative to ``out``'s folder when given)."""
    cols = columns(summary["k"])
    body = []
    for name, row in summary["methods"].items():
        tests = summary["paired_tests"].get(name, {})
        cells = []
        for c in cols:
            text, test = cell(row[c.title], c.fmt), tests.get(c.title)
            if text != "n/a" and test and test["t_test_p"] is not None:
                text += f" (p={test['t_test_p']:.2g})"
            cells.append(text)
        body.append([name, str(len(row["seeds"])), *cells])
    text = markdown(["method", "seeds", *(c.title for c in cols)], body)
    if summary["reference"]:
        text += f"\nmean ± sample std over seeds; p: paired t-test against {summary['reference']} on the same seeds.\n"
    gains = faithfulness_gains(summary)
    if gains:
        text += (f"\nFaithfulness gain over {summary['reference']} (F_method / F_reference - 1, means over seeds, "
                 f"k = {summary['k']}): " + ", ".join(f"{name} {gain:+.0%}" for name, gain in gains.items()) + "\n")
    videos = {name: path for name, path in summary.get("videos", {}).items() if path}
    if videos:
        base = Path(out).resolve().parent if out else None
        links = [f"[{name}]({os.path.relpath(Path(path).resolve(), base) if base else path})" for name, path in videos.items()]
        text += "\nTest-level episodes with the chosen action's CAM (GIF): " + ", ".join(links) + "\n"
    return text


def faithfulness_gains(summary: dict) -> dict[str, float]:
    """``F_method / F_reference - 1`` per method (:func:`lookright.metrics.faithfulness.faithfulness`),
    where the reference's mean faithfulness is positive."""
    title = f"faithfulness-{summary['k']}"
    methods, reference = summary["methods"], summary.get("reference")
    ref = (methods.get(reference) or {}).get(title, {}).get("mean") if reference else None
    if not ref or ref <= 0:
        return {}
    return {name: row[title]["mean"] / ref - 1 for name, row in methods.items()
            if name != reference and row[title]["mean"] is not None}
