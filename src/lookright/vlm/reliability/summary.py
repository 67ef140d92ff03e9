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
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(table, baseline))
        for protocol, rows in table.items():
            pareto_figure(rows, out.parent / f"pareto_{protocol}.png", protocol)
        (out.parent / "summary.json").write_text(json.dumps(table, indent=2, default=float))
    return table


def _ms(values) -> tuple[float, float]:
    d = describe(values)
    return (d["mean"], d["std"] if d["std"] is not None else float("nan"))


def _fmt(ms: tuple[float, float], digits: int = 1) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def markdown(table: dict, baseline: str = "baseline") -> str:
    lines = []
    for protocol, rows in table.items():
        strategies = list(rows[0]["drop_per_strategy"])
        lines += [f"### {protocol} protocol", "",
                  "| config | seeds | normal acc. (%) | " + " | ".join(f"Drop {s}" for s in strategies)
                  + " | avg Drop | TDI | rel. reduction vs " + baseline + " | t-test p | McNemar p |",
                  "|---" * (8 + len(strategies)) + "|"]
        for r in rows:
            red = f"{100 * r['relative_drop_reduction']:.1f}%" if "relative_drop_reduction" in r else "-"
            tp = f"{r['t_test_p']:.2g}" if "t_test_p" in r else "-"
            mp = f"{r['mcnemar']['p']:.2g}" if "mcnemar" in r else "-"
            lines.append(f"| {r['name']} | {r['n']} | {_fmt(r['normal'])} | "
                         + " | ".join(_fmt(r["drop_per_strategy"][s]) for s in strategies)
                         + f" | {_fmt(r['drop'])} | {_fmt(r['tdi'], 3)} | {red} | {tp} | {mp} |")
        lines.append("")
    return "\n".join(lines)
