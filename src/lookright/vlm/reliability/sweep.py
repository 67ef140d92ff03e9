"""Reliability runs over seeds, as run specs for :mod:`lookright.runs.runner` (``vlm eval`` / ``vlm tune``).

Folders are ``OUT_DIR/NAME/seedS`` (``RUN/eval/seedS`` with ``from_run``). Before anything runs
every folder is checked: a finished run of the same config is read back, an interrupted or failed
one restarted in place, a folder holding another config stops everything with the differing keys.
"""

from __future__ import annotations

from pathlib import Path

from lookright.runs.config import config_tree
from lookright.runs.folder import RunFolder
from lookright.runs.runner import RunSpec, check_folders, seed_range
from lookright.vlm.reliability.config import FINGERPRINT_IGNORES, ReliabilityConfig, build_reliability_config
from lookright.vlm.reliability.run import default_run_dir, run_reliability, source_config


def reliability_specs(cfg: ReliabilityConfig, seeds: int, first_seed: int | None = None,
                      from_run: str | Path | None = None, progress: bool = False) -> list[RunSpec]:
    """One spec per seed (``progress``: each run draws its own progress bar)."""
    if from_run is not None:
        source_config(from_run, cfg)
    specs = []
    for seed in seed_range(seeds, first_seed, cfg.seed):
        one = build_reliability_config({**config_tree(cfg), "seed": seed}, f"{cfg.name} seed {seed}")
        extra = {"from_run": None if from_run is None else str(from_run), "progress": progress}
        specs.append(RunSpec(config_tree(one), str(default_run_dir(one, from_run)), f"{cfg.name} seed {seed}",
                             extra=extra))
    return check_folders(specs, FINGERPRINT_IGNORES)


def execute(spec: RunSpec) -> dict:
    """Run one spec (module level, so worker processes and Ray can call it): a finished run is
    read back, an interrupted or failed one restarted in place, a new one run."""
    cfg = build_reliability_config(spec.resolved("model.threads"), spec.label)
    metrics, resume = RunFolder(spec.run_dir).reuse(spec.config, FINGERPRINT_IGNORES)
    if metrics is not None:
        return metrics
    return run_reliability(cfg, spec.extra.get("progress", False), spec.run_dir, spec.extra.get("from_run"),
                           resume=resume)
