"""RL seeds as run specs for :mod:`lookright.runs.runner` (local processes or Ray).

Folders are ``OUT_DIR/NAME/seedS`` (or ``--run-dir`` for one seed). Before anything runs every
folder is checked: one holding another config, or being run by another process, stops the
command. Then a finished run is read back, an interrupted or failed one trained again (PPO keeps
no mid-run checkpoint), a new one trained.
"""

from __future__ import annotations

from pathlib import Path

from lookright.errors import ConfigError
from lookright.rl.config import RLConfig
from lookright.rl.train import FINGERPRINT_IGNORES, train_agent
from lookright.runs.config import build_config, config_tree
from lookright.runs.folder import RunFolder
from lookright.runs.runner import RunSpec, check_folders, seed_range


def seed_specs(base: RLConfig, seeds: int, first_seed: int | None = None,
               run_dir: str | Path | None = None) -> list[RunSpec]:
    """One spec per seed, every folder checked up front (see the module docstring)."""
    if run_dir is not None and seeds > 1:
        raise ConfigError("--run-dir names one run; with --seeds > 1 the runs go to OUT_DIR/NAME/seedS")
    specs = []
    for seed in seed_range(seeds, first_seed, base.seed):
        cfg = base.model_copy(update={"seed": seed})
        folder = run_dir or Path(cfg.out_dir) / cfg.name / f"seed{seed}"
        specs.append(RunSpec(config_tree(cfg), str(folder), f"{cfg.name} seed {seed}"))
    return check_folders(specs, FINGERPRINT_IGNORES)


def spec_config(spec: RunSpec) -> RLConfig:
    """The spec's config, with the runner's thread count."""
    return build_config(spec.resolved("agent.threads"), spec.label, RLConfig)


def execute(spec: RunSpec, progress: bool = False, read_back: bool = True) -> dict:
    """Run one spec (module level, so worker processes and Ray can call it): a finished run is
    read back (``read_back=False``: refused, RunError), an interrupted or failed one trained
    again, a new one trained."""
    if not read_back:
        state = RunFolder(spec.run_dir).state()
        return train_agent(spec_config(spec), spec.run_dir, progress, resume=state in ("interrupted", "failed"))
    metrics, resume = RunFolder(spec.run_dir).reuse(spec.config, FINGERPRINT_IGNORES)
    if metrics is not None:
        return metrics
    return train_agent(spec_config(spec), spec.run_dir, progress, resume=resume)
