"""One whole training run with ``train.fast: false`` (reference path) against ``train.fast: true``,
on the same config, seed and data, alternating in one process (``--rounds`` of each, median wall
time, and process CPU time, which another job on the same cores disturbs less), with the accuracies of both so that the speed-up is read next to what it changes.

    python benchmarks/fast_run.py [--config configs/colormnist-kl.yaml] [--rounds 2] [--threads 1]
        [--out benchmarks/fast_results.json] [KEY=VALUE ...]

The data are the embedded 5,000 digits unless an override says ``data.embedded=false``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from timing import context, run_parser  # benchmarks/ is on sys.path as a script

from lookright.train import load_config, train

KEYS = ("shifted_test_acc", "val_acc", "val_align", "selected_epoch")


def main() -> None:
    parser = run_parser(__doc__, "fast_results.json", rounds=2)
    args = parser.parse_args()
    ctx = context(args.threads)
    base = ["data.embedded=true", "log.backends=[]", f"train.threads={args.threads}", *args.overrides]
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    cpu: dict[str, list[float]] = {"reference": [], "fast": []}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("reference", "fast") if r % 2 == 0 else ("fast", "reference")
            for mode in order:
                cfg = load_config(args.config, [*base, f"train.fast={mode == 'fast'}"])
                t0, c0 = time.perf_counter(), time.process_time()
                metrics = train(cfg, Path(tmp) / f"{mode}-{r}", progress=False)
                times[mode].append(time.perf_counter() - t0)
                cpu[mode].append(time.process_time() - c0)
                results[mode] = {k: metrics[k] for k in KEYS}
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        **ctx,
        "wall_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "speedup": round(med["reference"] / med["fast"], 3),
        "cpu_s": {k: [round(t, 2) for t in v] for k, v in cpu.items()},
        "cpu_speedup": round(statistics.median(cpu["reference"]) / statistics.median(cpu["fast"]), 3),
        "metrics": results,
        "shifted_test_acc_difference": round(results["fast"]["shifted_test_acc"]
                                             - results["reference"]["shifted_test_acc"], 3),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
