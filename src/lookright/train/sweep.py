"""Supervised sweeps: a config over seeds x a grid, as run specs for :mod:`lookright.runs.runner`.

Folders are ``OUT_DIR/NAME[-GRID]/seedS``. Before anything runs every folder is checked: a
finished run of the same config is read back, an interrupted or failed one is resumed, a folder
holding another config (or being run by another process) stops the sweep with the differing keys.
"""

from __future__ import annotations

from pathlib import Path

from lookright.errors import ConfigError
from lookright.runs.config import config_tree, merge_trees, parse_overrides
from lookright.runs.folder import RunFolder
from lookright.runs.runner import RunSpec, check_folders, combo_suffix, expand_grid, sample_grid, seed_range
from lookright.train.config import FINGERPRINT_IGNORES, RunConfig, build_config


def sweep_specs(base: RunConfig, seeds: int, grid: list[str], first_seed: int | None = None,
                samples: int | None = None, search_seed: int = 0) -> list[RunSpec]:
    """Specs for grid x seeds (``samples``: that many grid points drawn at random)."""
    specs = []
    combos = expand_grid(grid)
    ignored = [k for k, _ in combos[0] if any(k == i or k.startswith(i + ".") for i in FINGERPRINT_IGNORES)]
    if ignored:
        raise ConfigError(f"--grid {', '.join(ignored)}: this setting does not change what is trained (it is left "
                          "out of the run's fingerprint), so its grid points would be the same run")
    for combo in sample_grid(combos, samples, search_seed):
        suffix = combo_suffix(combo)
        name = base.name + (f"-{suffix}" if suffix else "")
        overrides = [f"{k}={v}" for k, v in combo]
        for seed in seed_range(seeds, first_seed, base.seed):
            tree = merge_trees(config_tree(base), parse_overrides(overrides))
            tree.update(name=name, seed=seed)
            cfg = build_config(tree, f"sweep {name}")
            specs.append(spec_for(cfg, Path(cfg.out_dir) / name / f"seed{seed}"))
    return checked(specs)


def spec_for(cfg: RunConfig, run_dir: str | Path) -> RunSpec:
    return RunSpec(config_tree(cfg), str(run_dir), f"{cfg.name} seed {cfg.seed}")


def checked(specs: list[RunSpec]) -> list[RunSpec]:
    """Refuse the whole sweep before anything runs (see :func:`lookright.runs.runner.check_folders`)."""
    return check_folders(specs, FINGERPRINT_IGNORES)


def execute(spec: RunSpec, progress: bool = False, on_epoch=None) -> dict:
    """Run one spec (module level, so worker processes and Ray can call it): a finished run is
    read back, an interrupted or failed one resumed, a new one trained."""
    from lookright.train.trainer import train

    cfg = build_config(spec.resolved("train.threads"), spec.label)
    metrics, resume = RunFolder(spec.run_dir).reuse(spec.config, FINGERPRINT_IGNORES)
    if metrics is not None:
        return metrics
    return train(cfg, spec.run_dir, resume=resume, progress=progress, on_epoch=on_epoch)
