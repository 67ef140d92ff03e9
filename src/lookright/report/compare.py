"""Compare evaluated runs: methods x metrics over seeds, with paired tests.

Runs are grouped by their config ``name`` (one method, several seeds). Attention metrics depend on
the extractor that drew the maps, so every run is read under one extractor: ``extractor`` when
given (``metrics["evaluations"][extractor]``), else each run's own evaluation, and runs evaluated
with different extractors are refused. Each metric gets
mean, std and 95% CI over seeds (:func:`lookright.metrics.describe`); every pair of methods
gets a paired t-test and a Wilcoxon test over their shared seeds, the mean difference, and the
relative gain ``(b - a) / |a|`` signed so that positive means *b is better*. McNemar tests
compare the per-image predictions of two methods for each shared seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from lookright.errors import LookrightError
from lookright.metrics.statistics import describe, mcnemar, paired_tests
from lookright.runs.folder import RunFolder, finished_runs


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    higher_is_better: bool
    get: Callable[[dict], float | None]
    digits: int = 3


def _at(values: list, fractions: list, k: float):
    return values[fractions.index(k)] if k in fractions else None


def _removal(field_name: str, k: float):
    def get(m):
        r = m["evaluation"]["faithfulness"]["removal"]
        return _at(r[field_name], r["fractions"], k)
    return get


def _removal_gap(k: float):
    def get(m):
        r = m["evaluation"]["faithfulness"]["removal"]
        top, rnd = _at(r["prob_drop_top"], r["fractions"], k), _at(r["prob_drop_random"], r["fractions"], k)
        return None if top is None else top - rnd
    return get


def _road_gap(m):
    r = m["evaluation"]["faithfulness"]["road"]
    return float(np.mean(r["lerf_prob"]) - np.mean(r["morf_prob"]))


def _loc(name):
    return lambda m: m["evaluation"]["localisation"][name]["mean"]


def columns(removal_k: float = 0.1) -> list[Column]:
    pct = f"{100 * removal_k:g}%"
    return [
        Column("shifted_test_acc", "shifted test acc (%)", True, lambda m: m["shifted_test_acc"], 2),
        Column("val_acc", "val acc (%)", True, lambda m: m["val_acc"], 2),
        Column("pointing_game", "pointing game", True, _loc("pointing_game")),
        Column("energy_pointing_game", "energy PG", True, _loc("energy_pointing_game")),
        Column("relevance_mass_accuracy", "relevance mass", True, _loc("relevance_mass_accuracy")),
        Column("relevance_rank_accuracy", "relevance rank", True, _loc("relevance_rank_accuracy")),
        Column("top_k_intersection", "top-k intersection", True, _loc("top_k_intersection")),
        Column("iou", "IoU", True, _loc("iou")),
        Column("roc_auc", "ROC-AUC", True, _loc("roc_auc")),
        Column("shortcut_mass", "attention on shortcut", False, lambda m: m["evaluation"]["shortcut_mass"]["mean"]),
        Column("deletion_auc", "deletion AUC", False, lambda m: m["evaluation"]["faithfulness"]["deletion"]["auc"]),
        Column("insertion_auc", "insertion AUC", True, lambda m: m["evaluation"]["faithfulness"]["insertion"]["auc"]),
        Column("removal_drop", f"top-{pct} removal drop", True, _removal("prob_drop_top", removal_k)),
        Column("removal_gap", f"top-{pct} minus random drop", True, _removal_gap(removal_k)),
        Column("road_gap", "ROAD LeRF - MoRF", True, _road_gap),
    ]


@dataclass
class Method:
    name: str
    runs: list[dict] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.runs]


def run_folders(paths: list[Path]) -> list[Path]:
    """Each path is a run folder or a folder searched recursively for run folders."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise LookrightError(f"{path} does not exist or is not a folder")
        found.extend(run.path for run in finished_runs(path, "supervised"))
    if not found:
        raise LookrightError(f"no finished run folders under {', '.join(map(str, paths))} "
                             "(unfinished and failed runs are never compared)")
    return found


def evaluation_of(m: dict, folder: Path, extractor: str | None) -> dict:
    """The run's evaluation under ``extractor`` (None: the run's own extractor)."""
    found = (m.get("evaluations") or {}).get(extractor) if extractor else m.get("evaluation")
    if found is None and extractor and (m.get("evaluation") or {}).get("extractor") == extractor:
        found = m["evaluation"]  # written before per-extractor evaluations
    if found is None:
        option = f" --extractor {extractor}" if extractor else ""
        raise LookrightError(f"{folder} has not been evaluated{' with ' + extractor if extractor else ''}; "
                             f"run `lookright eval {folder}{option}` first")
    return found


def check_extractors(methods: list[Method]) -> None:
    """Refuse runs whose attention metrics come from different extractors."""
    used: dict[str, list[str]] = {}
    for method in methods:
        for run in method.runs:
            used.setdefault(run["evaluation"]["extractor"], []).append(f"{method.name} seed {run['seed']}")
    if len(used) > 1:
        listing = "; ".join(f"{e}: {', '.join(runs[:3])}{' ...' if len(runs) > 3 else ''}" for e, runs in used.items())
        raise LookrightError(f"the runs were evaluated with different attention extractors ({listing}); their "
                             "attention metrics are not comparable. Evaluate all with one extractor "
                             "(`lookright eval RUNS --extractor NAME`) and pass `--extractor NAME` to compare")


def load_methods(paths: list[Path], extractor: str | None = None) -> list[Method]:
    """Methods in the order first seen, each run read under one extractor (its ``evaluation``);
    errors on unevaluated runs, mixed extractors and mixed datasets."""
    methods: dict[str, Method] = {}
    datasets: dict[str, list[str]] = {}
    for folder in run_folders(paths):
        m = RunFolder(folder).metrics()
        m["evaluation"] = evaluation_of(m, folder, extractor)
        datasets.setdefault(m["dataset"], []).append(str(folder))
        method = methods.setdefault(m["name"], Method(m["name"]))
        if m["seed"] in method.seeds:
            raise LookrightError(f"{m['name']} has two runs with seed {m['seed']}: pass each run folder once")
        method.runs.append(m)
        method.folders.append(folder)
    if len(datasets) > 1:
        listing = "; ".join(f"{d}: {len(f)} runs (e.g. {f[0]})" for d, f in datasets.items())
        raise LookrightError(f"runs of different datasets cannot be compared ({listing}); "
                             "compare one dataset at a time")
    for method in methods.values():
        order = np.argsort(method.seeds)
        method.runs = [method.runs[i] for i in order]
        method.folders = [method.folders[i] for i in order]
    check_extractors(list(methods.values()))
    return list(methods.values())


def _paired(a: Method, b: Method, col: Column) -> dict | None:
    shared = sorted(set(a.seeds) & set(b.seeds))
    va = [col.get(r) for r in a.runs if r["seed"] in shared]
    vb = [col.get(r) for r in b.runs if r["seed"] in shared]
    if len(shared) < 2 or any(v is None for v in va + vb):
        return None
    tests = paired_tests(vb, va)
    base = float(np.mean(va))
    sign = 1 if col.higher_is_better else -1
    tests["relative_gain"] = sign * (float(np.mean(vb)) - base) / abs(base) if base else None
    tests["seeds"] = shared
    return tests


def _mcnemar(a: Method, b: Method) -> list[dict]:
    out = []
    for seed in sorted(set(a.seeds) & set(b.seeds)):
        fa, fb = a.folders[a.seeds.index(seed)], b.folders[b.seeds.index(seed)]
        pa, pb = fa / "eval" / "predictions.npz", fb / "eval" / "predictions.npz"
        if not (pa.is_file() and pb.is_file()):
            continue
        with np.load(pa) as za, np.load(pb) as zb:
            if not np.array_equal(za["y"], zb["y"]):
                continue  # different test images: not paired
            out.append({"seed": seed, **mcnemar(za["pred"] == za["y"], zb["pred"] == zb["y"])})
    return out


def compare(paths: list[Path], reference: str | None = None, removal_k: float = 0.1,
            extractor: str | None = None) -> dict:
    """Everything the report shows, as a JSON-ready dict."""
    methods = load_methods(paths, extractor)
    names = [m.name for m in methods]
    reference = reference or names[0]
    if reference not in names:
        raise LookrightError(f"reference method {reference!r} is not among the compared runs: {names}")
    cols = columns(removal_k)
    table = {m.name: {c.key: describe([c.get(r) for r in m.runs]) for c in cols} for m in methods}
    pairs = {a.name: {b.name: {c.key: _paired(a, b, c) for c in cols} for b in methods if b is not a}
             for a in methods}
    mc = {b.name: _mcnemar(methods[names.index(reference)], b) for b in methods if b.name != reference}
    return {
        "dataset": methods[0].runs[0]["dataset"], "reference": reference,
        "extractor": methods[0].runs[0]["evaluation"]["extractor"],
        "methods": [{"name": m.name, "seeds": m.seeds, "folders": [str(f) for f in m.folders],
                     "extractor": m.runs[0]["evaluation"]["extractor"]} for m in methods],
        "columns": [{"key": c.key, "label": c.label, "higher_is_better": c.higher_is_better, "digits": c.digits}
                    for c in cols],
        "table": table, "pairs": pairs, "mcnemar_vs_reference": mc,
        "settings": methods[0].runs[0]["evaluation"]["settings"],
    }
