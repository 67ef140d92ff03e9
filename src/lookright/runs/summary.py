"""Tables over seeds for every pipeline: finished runs only, mean ± sample std per group, paired
tests against a reference, Markdown out.

A column is ``Column(title, path, fmt)``; ``path`` is a tuple of keys into ``metrics.json``, and a
path may end in ``("-", a, b)``: the difference of two sibling entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lookright.errors import RunError
from lookright.metrics.statistics import describe, paired_tests
from lookright.runs.folder import config_diff, finished_runs, fingerprint_tree


@dataclass(frozen=True)
class Column:
    title: str
    path: tuple
    fmt: str = "{:.3f}"


def value_at(metrics: dict, path: tuple):
    """The value at ``path`` in ``metrics`` (None when absent)."""
    if "-" in path:
        cut = path.index("-")
        a, b = value_at(metrics, (*path[:cut], path[cut + 1])), value_at(metrics, (*path[:cut], path[cut + 2]))
        return None if a is None or b is None else a - b
    node = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def load_finished(root: str | Path, kind: str, what: str, hint: str) -> list[dict]:
    """``metrics.json`` of every finished run of ``kind`` under ``root`` (each with ``_dir``);
    a RunError naming ``hint`` when there is none."""
    root = Path(root)
    if not root.exists():
        raise RunError(f"{root} does not exist; pass the folder that holds your run folders")
    rows = []
    for run in finished_runs(root, kind):
        m = run.metrics()
        info = run.info()
        m["_dir"] = str(run.path)
        m["_config"] = fingerprint_tree(info.get("config") or {}, (*info.get("fingerprint_ignores", ()), "seed"))
        rows.append(m)
    if not rows:
        raise RunError(f"no finished {what} run under {root} (unfinished and failed runs are never summarised); {hint}")
    return rows


def cell(d: dict, fmt: str) -> str:
    """``"mean ± std"`` (``"mean"`` for one seed, ``"n/a"`` without values)."""
    if d["mean"] is None:
        return "n/a"
    return fmt.format(d["mean"]) + ("" if d["std"] is None else " ± " + fmt.format(d["std"]))


def group(rows: Iterable[dict], key: Callable[[dict], tuple]) -> dict[tuple, dict[int, dict]]:
    """``{group key: {seed: metrics}}``; a seed seen twice in one group is a RunError (two folders
    would be averaged as one)."""
    out: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for row in rows:
        k = key(row)
        first = next(iter(out[k].values()), None)
        if first is not None and "_config" in row and first.get("_config") != row["_config"]:
            raise RunError(f"{' / '.join(map(str, k))} names runs of different configs ({first.get('_dir')} and "
                           f"{row.get('_dir')}: {config_diff(first['_config'], row['_config'])}); give them different "
                           "names, or summarise one folder")
        if row["seed"] in out[k]:
            raise RunError(f"seed {row['seed']} of {' / '.join(map(str, k))} is in two run folders "
                           f"({out[k][row['seed']].get('_dir')} and {row.get('_dir')}); summarise one of them")
        out[k][row["seed"]] = row
    return dict(sorted(out.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


def describe_groups(groups: dict[tuple, dict[int, dict]], columns: list[Column]) -> dict[tuple, dict]:
    """``{group: {"seeds": [...], column title: describe(...)}}``."""
    return {k: {"seeds": sorted(seeds), **{c.title: describe([value_at(seeds[s], c.path) for s in sorted(seeds)])
                                           for c in columns}}
            for k, seeds in groups.items()}


def paired_against(groups: dict[tuple, dict[int, dict]], reference_of: Callable[[tuple], tuple | None],
                   columns: list[Column]) -> dict[tuple, dict]:
    """Each group against its reference group on the seeds both have: ``{group: {"reference",
    "seeds", column title: paired_tests(...)}}``."""
    out = {}
    for k, seeds in groups.items():
        ref_key = reference_of(k)
        if ref_key is None or ref_key == k or ref_key not in groups:
            continue
        ref = groups[ref_key]
        common = sorted(set(seeds) & set(ref))
        tests = {"reference": ref_key, "seeds": common}
        for c in columns:
            a, b = [value_at(seeds[s], c.path) for s in common], [value_at(ref[s], c.path) for s in common]
            if common and all(v is not None for v in a + b):
                tests[c.title] = paired_tests(a, b)
        out[k] = tests
    return out


def markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"

