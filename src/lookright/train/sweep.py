"""Supervised sweeps: a config over seeds x a grid, as run specs for :mod:`lookright.runs.runner`.

Folders are ``OUT_DIR/NAME[-GRID]/seedS``. Before anything runs every folder is checked: a
finished run of the same config is read back, an interrupted or failed one is resumed, a folder
holding another config (or being run by another process) stops the sweep with the differing keys.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lookright.errors import ConfigError
from lookright.runs.config import config_tree, merge_trees, parse_overrides
from lookright.runs.folder import RunFolder
from lookright.runs.runner import (
    RunSpec,
    check_folders,
    combo_suffix,
    expand_grid,
    sample_grid,
    seed_range,
)
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


def ensemble_jobs(specs: list[RunSpec], size: int) -> list[RunSpec]:
    """Group the new runs of ``specs`` whose settings allow it (:data:`lookright.train.ensemble.MAY_DIFFER`)
    into ensembles of at most ``size`` members, same-seed members together (they share their input
    batches); finished, interrupted and failed runs stay single specs (read back or resumed). An
    ensemble is one spec: its first member's config and folder, its members in ``extra["members"]``."""
    from lookright.train.ensemble import group_key, unsupported

    if size < 1:
        raise ConfigError(f"--ensemble must be >= 1, got {size}")
    jobs: list[RunSpec] = []
    groups: dict[str, list[tuple[RunConfig, RunSpec]]] = {}
    for spec in specs:
        cfg = build_config(spec.config, spec.label)
        if size == 1 or RunFolder(spec.run_dir).state() != "new":
            jobs.append(spec)
            continue
        reason = unsupported(cfg)
        if reason:
            raise ConfigError(f"--ensemble {size}: {spec.label} cannot be trained in an ensemble: {reason}; "
                              "run this sweep without --ensemble")
        groups.setdefault(group_key(cfg), []).append((cfg, replace(spec, run_dir=str(Path(spec.run_dir).resolve()))))
    for members in groups.values():
        members.sort(key=lambda m: m[0].seed)
        for i in range(0, len(members), size):
            chunk = [m[1] for m in members[i : i + size]]
            if len(chunk) == 1:
                jobs.append(chunk[0])
                continue
            label = f"ensemble of {len(chunk)} ({chunk[0].label} ... {chunk[-1].label})"
            jobs.append(replace(chunk[0], label=label, extra={"members": chunk}))
    return jobs


def job_results(jobs: list[RunSpec], results: list[dict]) -> list[dict]:
    """One result per run: an ensemble's members are read back from their folders (finished: the
    metrics; otherwise the error recorded there, or the ensemble's)."""
    out = []
    for job, result in zip(jobs, results, strict=True):
        members = job.extra.get("members")
        if not members:
            out.append(result)
            continue
        for member in members:
            folder = RunFolder(member.run_dir)
            state = folder.state()
            if state == "finished":
                out.append(folder.metrics())
            else:
                error = (folder.info() or {}).get("error") or result.get("error") or f"the run is {state}"
                out.append({"error": error, "run_dir": member.run_dir})
    return out


def execute(spec: RunSpec, progress: bool = False, on_epoch=None) -> dict:
    """Run one spec (module level, so worker processes and Ray can call it): a finished run is
    read back, an interrupted or failed one resumed, a new one trained; an ensemble spec (see
    :func:`ensemble_jobs`) trains its members together."""
    from lookright.train.trainer import train

    if spec.extra.get("members"):
        from lookright.train.ensemble import train_ensemble

        members = [replace(m, threads=spec.threads) for m in spec.extra["members"]]
        cfgs = [build_config(m.resolved("train.threads"), m.label) for m in members]
        return {"ensemble": train_ensemble(cfgs, [m.run_dir for m in members])}

    cfg = build_config(spec.resolved("train.threads"), spec.label)
    metrics, resume = RunFolder(spec.run_dir).reuse(spec.config, FINGERPRINT_IGNORES)
    if metrics is not None:
        return metrics
    return train(cfg, spec.run_dir, resume=resume, progress=progress, on_epoch=on_epoch)
