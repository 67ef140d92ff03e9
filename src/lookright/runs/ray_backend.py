"""Run sweep specs on a Ray cluster through Ray Tune (``lookright sweep ... --backend ray``).

Each spec is one Tune trial with its own CPU/GPU resources; the trial calls the same ``execute``
as the local runner, so run folders are written exactly as locally (and a rerun of an interrupted
sweep reads finished runs back and resumes the others). Run folders are written by the node that
runs the trial: on a multi-node cluster ``out_dir`` must be on a filesystem every node shares,
and lookright must be installed on every node. Tune's own records go to ``OUT_DIR/.ray/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lookright.errors import ConfigError
from lookright.runs.runner import RunSpec, guarded

PASSED_ENV = ("LOOKRIGHT_DATA", "LOOKRIGHT_CACHE", "PYTHONPATH")


@dataclass(frozen=True)
class Asha:
    """Early stopping of the weaker runs (Ray Tune's ASHA) on a per-epoch ``metric``.

    A run stopped early stays *interrupted* (never summarised); a later sweep without ``--scheduler``
    resumes it to the end."""

    metric: str = "val_acc"
    mode: str = "max"
    max_t: int = 10  # epochs
    grace_period: int = 1
    reduction_factor: float = 3.0


def _trial(config: dict, execute: Callable, specs: list[RunSpec], metric: str | None) -> None:
    from ray import tune

    index = config["index"]
    last: dict = {}

    def report(record: dict) -> None:
        if record.get(metric) is None:
            raise ConfigError(f"--metric {metric}: not in the epoch record (keys: {', '.join(sorted(record))})")
        last[metric] = record[metric]
        tune.report({"index": index, metric: record[metric], "epoch": record["epoch"] + 1})

    result = guarded(execute, specs[index], **({"on_epoch": report} if metric else {}))
    tune.report({"index": index, "error": result.get("error", "") if isinstance(result, dict) else "", **last})


def run_ray(execute: Callable, specs: list[RunSpec], address: str | None = None, cpus_per_run: float = 1.0,
            gpus_per_run: float = 0.0, on_done: Callable | None = None, storage: str | Path = "runs",
            asha: Asha | None = None) -> list[dict]:
    """Run every spec as one Ray Tune trial; return the results in the order of ``specs`` (a run
    that ASHA stopped early gives ``{"stopped": ..., "run_dir": ...}``)."""
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner: lookright prints its own progress
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("--backend ray needs Ray Tune: pip install 'ray[tune]' (or pip install 'lookright[ray]')") \
            from None
    specs = [replace(s, run_dir=str(Path(s.run_dir).resolve()), threads=max(1, int(cpus_per_run))) for s in specs]
    started_here = not ray.is_initialized()
    if started_here:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ} | {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     runtime_env={"env_vars": env})
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local Ray'}: {exc}") from None

    class Done(tune.Callback):
        """Advances the caller's progress as trials report; Tune pickles its config, so the
        callable (which may hold locks) stays out of the pickled state."""

        def __init__(self, fn):
            self.fn = fn

        def __getstate__(self):
            return {"fn": None}

        def on_trial_complete(self, iteration, trials, trial, **info):
            if self.fn:
                self.fn(trial.last_result)

    try:
        metric = asha.metric if asha else None
        trainable = tune.with_resources(tune.with_parameters(_trial, execute=execute, specs=specs, metric=metric),
                                        {"cpu": cpus_per_run, "gpu": gpus_per_run})
        scheduler = None
        if asha is not None:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(time_attr="training_iteration", metric=asha.metric, mode=asha.mode,
                                      max_t=asha.max_t + 1, grace_period=asha.grace_period,
                                      reduction_factor=asha.reduction_factor)
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(specs))))},
            tune_config=tune.TuneConfig(num_samples=1, reuse_actors=False, scheduler=scheduler),
            run_config=tune.RunConfig(name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str((Path(storage) / ".ray").resolve()), verbose=0,
                                      callbacks=[Done(on_done)], failure_config=tune.FailureConfig(max_failures=0)),
        )
        grid = tuner.fit()
        errors: dict[int, str] = {}
        for r in grid:
            if r.error is not None:
                errors[r.config["index"]] = f"{type(r.error).__name__}: {r.error}"
            elif r.metrics and r.metrics.get("error"):
                errors[r.config["index"]] = r.metrics["error"]
    finally:
        if started_here:
            ray.shutdown()
    return [_read_back(s, errors.get(i)) for i, s in enumerate(specs)]


def _read_back(spec: RunSpec, error: str | None) -> dict:
    from lookright.runs.folder import RunFolder

    folder = RunFolder(spec.run_dir)
    state = folder.state()
    if error is None and state == "finished":
        return folder.metrics()
    if error is None and state == "interrupted":  # stopped by ASHA, or by Ctrl-C on the sweep
        return {"stopped": "stopped before finishing", "run_dir": spec.run_dir}
    return {"error": error or "the trial ended without finishing its run", "run_dir": spec.run_dir}
