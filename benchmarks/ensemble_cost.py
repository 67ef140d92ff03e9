"""Wall time of ensembled training against one run, measured in one process, one after another.

* ``one_seed``: one sequential run (``lookright.train.train``);
* ``five_seeds``: 5 seeds as one ensemble (different data order per member: stacked inputs);
* ``five_lambdas_one_seed``: 5 values of ``loss.lambda0`` with one seed as one ensemble (shared input);
* ``grid_25_one_ensemble``: 5 lambdas x 5 seeds as one ensemble of 25;
* ``grid_25_by_seed``: the same 25 runs as 5 ensembles of 5 same-seed members (what
  ``lookright sweep --grid loss.lambda0=... --seeds 5 --ensemble 5`` does).

Every variant trains the config end to end into fresh run folders (data, steps, per-epoch
evaluation, checkpoints, final metrics, figures); ratios are to ``one_seed`` of the same round.

    python benchmarks/ensemble_cost.py [--config configs/colormnist-kl.yaml] [--rounds 1] [--threads 1]
        [--lambdas 100,140,160,200,300] [--out benchmarks/ensemble_results.json] [KEY=VALUE ...]

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
from lookright.train.ensemble import train_ensemble


def variants(base, lambdas: list[float]) -> dict[str, list[list]]:
    """name -> the ensembles it trains, one after another (each a list of configs)."""
    def cfg(seed: int, lam: float | None = None):
        update = {"seed": seed, "name": f"{base.name}-l{lam}" if lam is not None else base.name}
        c = base.model_copy(update=update, deep=True)
        if lam is not None:
            c.loss.lambda0 = lam
        return c

    seeds = range(5)
    return {
        "one_seed": [[cfg(0)]],
        "five_seeds": [[cfg(s) for s in seeds]],
        "five_lambdas_one_seed": [[cfg(0, lam) for lam in lambdas]],
        "grid_25_one_ensemble": [[cfg(s, lam) for s in seeds for lam in lambdas]],
        "grid_25_by_seed": [[cfg(s, lam) for lam in lambdas] for s in seeds],
    }


def run(ensembles: list[list], folder: Path) -> tuple[float, float]:
    """Wall and process CPU seconds of training ``ensembles`` one after another."""
    t0, c0 = time.perf_counter(), time.process_time()
    for k, cfgs in enumerate(ensembles):
        dirs = [folder / f"e{k}-m{i}" for i in range(len(cfgs))]
        if len(cfgs) == 1:
            train(cfgs[0], dirs[0], progress=False)
            continue
        failed = [r for r in train_ensemble(cfgs, dirs) if "error" in r]
        if failed:
            raise SystemExit(f"ensemble members failed: {failed}")
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = run_parser(__doc__, "ensemble_results.json", rounds=1)
    parser.add_argument("--lambdas", default="100,140,160,200,300")
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args()
    ctx = context(args.threads)
    base = load_config(args.config, ["data.embedded=true", "log.backends=[]", f"train.threads={args.threads}",
                                     *args.overrides])
    plan = variants(base, [float(v) for v in args.lambdas.split(",")])
    if args.only:
        plan = {k: v for k, v in plan.items() if k in args.only or k == "one_seed"}
    times: dict[str, list[float]] = {k: [] for k in plan}
    cpu: dict[str, list[float]] = {k: [] for k in plan}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, ensembles in plan.items():
                wall, used = run(ensembles, Path(tmp) / f"{name}-{r}")
                times[name].append(wall)
                cpu[name].append(used)
                print(f"round {r + 1}: {name} {wall:.1f} s wall, {used:.1f} s CPU", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {k: sum(len(e) for e in v) for k, v in plan.items()}
    report = {
        **ctx,
        "epochs": base.train.epochs, "runs": runs,
        "wall_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "ratio_to_one_seed": {k: round(v / med["one_seed"], 3) for k, v in med.items()},
        "seconds_per_run": {k: round(v / runs[k], 2) for k, v in med.items()},
        "cpu_s": {k: [round(t, 2) for t in v] for k, v in cpu.items()},
        "cpu_ratio_to_one_seed": {k: round(statistics.median(v) / statistics.median(cpu["one_seed"]), 3)
                                  for k, v in cpu.items()},
        "bars": {"five_seeds <= 2x": med.get("five_seeds", 0) / med["one_seed"] <= 2,
                 "25 members <= 6x": min(med.get("grid_25_one_ensemble", 1e9),
                                         med.get("grid_25_by_seed", 1e9)) / med["one_seed"] <= 6},
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
