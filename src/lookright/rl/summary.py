"""Seeds x methods: run RL configs over seeds (in parallel), and tabulate mean ± std with paired tests."""

from __future__ import annotations

import json
from pathlib import Path

from lookright.errors import LookrightError
from lookright.metrics.statistics import describe, paired_tests
from lookright.rl.config import RLConfig
from lookright.train.sweep import run_in_processes

#: (column, path into metrics.json, format); faithfulness columns at ``k`` are added by :func:`columns`
BASE_COLUMNS = [
    ("train return", ("evaluation", "train_levels", "return"), "{:.3f}"),
    ("train success", ("evaluation", "train_levels", "success"), "{:.3f}"),
    ("test return", ("evaluation", "test_levels", "return"), "{:.3f}"),
    ("test success", ("evaluation", "test_levels", "success"), "{:.3f}"),
    ("energy PG", ("evaluation", "alignment", "energy_pointing_game", "mean"), "{:.3f}"),
    ("IoU", ("evaluation", "alignment", "iou", "mean"), "{:.3f}"),
    ("on cue", ("evaluation", "alignment", "cue_energy", "mean"), "{:.3f}"),
]


def columns(k: str = "0.1") -> list[tuple[str, tuple, str]]:
    """Columns; a path may end in ``("-", a, b)``: the difference of two sibling entries."""
    f = ("evaluation", "faithfulness", k)
    return BASE_COLUMNS + [
        (f"Δp top-{k}", (*f, "prob_drop_top"), "{:.3f}"),
        (f"Δp random-{k}", (*f, "prob_drop_random"), "{:.3f}"),
        ("Δp top - random", (*f, "-", "prob_drop_top", "prob_drop_random"), "{:.3f}"),
        (f"return top-{k}", (*f, "return_top"), "{:.3f}"),
        (f"return random-{k}", (*f, "return_random"), "{:.3f}"),
        ("return random - top", (*f, "-", "return_random", "return_top"), "{:.3f}"),
        ("train time (s)", ("train_time_s",), "{:.0f}"),
    ]


def _get(metrics: dict, path: tuple):
    if "-" in path:
        cut = path.index("-")
        a, b = _get(metrics, (*path[:cut], path[cut + 1])), _get(metrics, (*path[:cut], path[cut + 2]))
        return None if a is None or b is None else a - b
    node = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _train_one(args: tuple[RLConfig, Path, bool]) -> dict:
    from lookright.rl.train import train_agent

    cfg, run_dir, skip_done = args
    if skip_done and (run_dir / "metrics.json").is_file():
        return json.loads((run_dir / "metrics.json").read_text())
    return train_agent(cfg, run_dir, progress=False)


def run_seeds(cfg: RLConfig, seeds: int, first_seed: int = 0, jobs: int = 1, skip_done: bool = True,
              on_done=None) -> list[dict]:
    """Train ``cfg`` for seeds ``first_seed ..``; run folders ``OUT_DIR/NAME/seedS``; finished runs are read back."""
    args = [(cfg.model_copy(update={"seed": s}), Path(cfg.out_dir) / cfg.name / f"seed{s}", skip_done)
            for s in range(first_seed, first_seed + seeds)]
    return run_in_processes(_train_one, args, jobs, on_done)


def load_runs(root: Path) -> dict[str, list[dict]]:
    """``{name: [metrics sorted by seed]}`` for every evaluated ``metrics.json`` under ``root``."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(Path(root).rglob("metrics.json")):
        m = json.loads(path.read_text())
        if "evaluation" in m and "attention_history" in m:
            runs.setdefault(m["name"], []).append(m)
    if not runs:
        raise LookrightError(f"no evaluated RL runs (metrics.json with 'evaluation') under {root}")
    return {name: sorted(ms, key=lambda m: m["seed"]) for name, ms in runs.items()}


def summarize_runs(runs: dict[str, list[dict]], reference: str | None = None, k: str = "0.1") -> dict:
    """Mean ± std per method and column; paired tests of each method against ``reference``
    (default: the method whose name contains 'vanilla') on the seeds both have."""
    cols = columns(k)
    reference = reference or next((n for n in runs if "vanilla" in n), None)
    table = {}
    for name, ms in runs.items():
        row = {"seeds": [m["seed"] for m in ms]}
        for col, path, _ in cols:
            row[col] = describe([_get(m, path) for m in ms])
        table[name] = row
    tests = {}
    if reference in runs:
        ref = {m["seed"]: m for m in runs[reference]}
        for name, ms in runs.items():
            if name == reference:
                continue
            common = [m for m in ms if m["seed"] in ref]
            tests[name] = {col: paired_tests([_get(m, path) for m in common], [_get(ref[m["seed"]], path) for m in common])
                           for col, path, _ in cols if all(_get(m, path) is not None for m in common)}
    return {"reference": reference, "k": k, "methods": table, "paired_tests": tests}


def markdown(summary: dict) -> str:
    cols = columns(summary["k"])
    lines = ["| method | seeds | " + " | ".join(c for c, _, _ in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for name, row in summary["methods"].items():
        cells = []
        for col, _, fmt in cols:
            d = row[col]
            if d["mean"] is None:
                cells.append("n/a")
                continue
            text = fmt.format(d["mean"]) + ("" if d["std"] is None else " ± " + fmt.format(d["std"]))
            test = summary["paired_tests"].get(name, {}).get(col)
            if test and test["t_test_p"] is not None:
                text += f" (p={test['t_test_p']:.2g})"
            cells.append(text)
        lines.append(f"| {name} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    if summary["reference"]:
        lines.append("")
        lines.append(f"mean ± sample std over seeds; p: paired t-test against {summary['reference']} on the same seeds.")
    return "\n".join(lines) + "\n"
