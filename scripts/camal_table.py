"""The README's CAMAL-style table and CAMAL's faithfulness gains, from `lookright compare` outputs.

    python scripts/camal_table.py report/colormnist report/decoymnist-cdep

Reads each folder's compare.json. Rows: methods; columns: shifted-test accuracy, energy pointing
game, IoU, deletion AUC, insertion AUC, top-k removal drop (mean ± std over seeds). Then, for
each benchmark, CAMAL's relative gain over RRR and KL on each faithfulness column with the
paired t-test and Wilcoxon p-values over seeds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ["shifted_test_acc", "energy_pointing_game", "iou", "deletion_auc", "insertion_auc", "removal_drop"]
FAITHFULNESS = ["deletion_auc", "insertion_auc", "removal_drop", "removal_gap"]


def cell(d: dict, digits: int) -> str:
    return "n/a" if d["mean"] is None else f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"


def method_of(name: str) -> str:
    return name.rsplit("-", 1)[-1]


def main(folders: list[str]) -> None:
    results = [json.loads((Path(f) / "compare.json").read_text()) for f in folders]
    cols = {c["key"]: c for c in results[0]["columns"]}
    head = ["benchmark", "method", "seeds"] + [cols[k]["label"] + (" ↑" if cols[k]["higher_is_better"] else " ↓")
                                               for k in COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        for m in r["methods"]:
            row = [r["dataset"], method_of(m["name"]), str(len(m["seeds"]))]
            row += [cell(r["table"][m["name"]][k], cols[k]["digits"]) for k in COLUMNS]
            print("| " + " | ".join(row) + " |")
    print()
    print("| benchmark | CAMAL vs | metric | relative gain | paired t p | Wilcoxon p |")
    print("|---|---|---|---|---|---|")
    for r in results:
        names = {method_of(m["name"]): m["name"] for m in r["methods"]}
        if "camal" not in names:
            continue
        for other in ("rrr", "kl"):
            if other not in names:
                continue
            for k in FAITHFULNESS:
                t = r["pairs"][names[other]][names["camal"]][k]
                if t is None:
                    continue
                gain = "n/a" if t["relative_gain"] is None else f"{100 * t['relative_gain']:+.1f}%"
                print(f"| {r['dataset']} | {other.upper()} | {cols[k]['label']} | {gain} | "
                      f"{t['t_test_p']:.3g} | {t['wilcoxon_p']:.3g} |")


if __name__ == "__main__":
    main(sys.argv[1:])
