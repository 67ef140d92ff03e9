"""``load_run(dir)``: a finished run folder of any pipeline, with its trained model.

    run = lookright.load_run("runs/colormnist-kl/seed0")
    run.model      # supervised: the classifier (selected weights, eval mode)
                   # rl: the AlignedPPO agent; reliability: (CLIP bundle with its adapter, head)
    run.config, run.metrics, run.kind, run.path
"""

from __future__ import annotations

from pathlib import Path

from lookright.errors import RunError
from lookright.runs.folder import LoadedRun, RunFolder


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The finished run in ``run_dir``; ``device`` overrides the config's device for the model."""
    folder = RunFolder(run_dir)
    kind = folder.require_finished()
    if kind == "supervised":
        from lookright.train.run_eval import load_finished_run

        return load_finished_run(folder.path, device)
    loader = {"rl": _rl, "reliability": _reliability}.get(kind)
    if loader is None:
        raise RunError(f"{folder.path} holds a run of kind {kind!r} that this version of lookright cannot load")
    config, model = loader(folder.path, device)
    return LoadedRun(kind, folder.path, config, folder.metrics(), model)


def _rl(path: Path, device: str | None):
    from lookright.rl.config import load_rl_config
    from lookright.rl.evaluate import load_agent

    cfg = load_rl_config(path / "config.yaml")
    return cfg, load_agent(path, device or cfg.agent.device, cfg.agent.algorithm)


def _reliability(path: Path, device: str | None):
    from lookright.vlm.reliability.config import load_reliability_config
    from lookright.vlm.reliability.run import load_tuned

    cfg = load_reliability_config(path / "config.yaml", [f"model.device={device}"] if device else [])
    cfg, clip, head = load_tuned(path, cfg)
    return cfg, (clip, head)
