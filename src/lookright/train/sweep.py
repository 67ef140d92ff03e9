"""Seeds x grid sweeps, run locally (optionally several processes), summarised over seeds."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from lookright.errors import ConfigError
from lookright.train.config import RunConfig, build_config, merge_trees, parse_overrides


def expand_grid(grid: list[str]) -> list[list[str]]:
    """``["a=1,2", "b=x"]`` -> ``[["a=1", "b=x"], ["a=2", "b=x"]]``."""
    axes = []
    for item in grid:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r} must look like key=v1,v2")
        key, values = item.split("=", 1)
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def sweep_configs(base: RunConfig, seeds: int, grid: list[str], first_seed: int = 0) -> list[tuple[RunConfig, Path]]:
    runs = []
    for combo in expand_grid(grid):
        suffix = "-".join(c.replace("=", "_").replace(".", "_") for c in combo)
        name = base.name + (f"-{suffix}" if suffix else "")
        for seed in range(first_seed, first_seed + seeds):
            tree = merge_trees(base.model_dump(mode="json"), parse_overrides(combo))
            tree.update(name=name, seed=seed)
            cfg = build_config(tree, f"sweep {name}")
            runs.append((cfg, Path(cfg.out_dir) / name / f"seed{seed}"))
    return runs


def _run_one(args: tuple[RunConfig, Path, bool]) -> dict:
    """Train one run; with ``skip_done``, a finished run is read back and an interrupted one resumed."""
    from lookright.train.trainer import LAST, train

    cfg, run_dir, skip_done = args
    if skip_done and (run_dir / "metrics.json").is_file():
        return json.loads((run_dir / "metrics.json").read_text())
    resume = skip_done and (run_dir / LAST).is_file()
    return train(cfg, run_dir, resume=resume, progress=False)


def run_in_processes(fn, args: list, jobs: int = 1, on_done=None) -> list:
    """``[fn(a) for a in args]``, in order; with ``jobs > 1`` in that many spawned processes
    (``fn`` must be a module-level function). ``on_done(result)`` is called as each result arrives."""
    results = []
    if jobs <= 1:
        for a in args:
            results.append(fn(a))
            if on_done:
                on_done(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(fn, args):
            results.append(result)
            if on_done:
                on_done(result)
    return results


def run_sweep(runs: list[tuple[RunConfig, Path]], jobs: int = 1, skip_done: bool = True, on_done=None) -> list[dict]:
    """Run every config; with ``jobs > 1`` in separate processes of one thread each."""
    if jobs > 1:
        runs = [(cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": 1})}), d) for cfg, d in runs]
    return run_in_processes(_run_one, [(cfg, d, skip_done) for cfg, d in runs], jobs, on_done)
