"""Evaluate a finished RL run folder again (``lookright rl eval``), with other ``eval.*`` settings:
the evaluation and the figures are replaced, ``metrics.json`` is written back atomically."""

from __future__ import annotations

from pathlib import Path

from lookright.errors import ConfigError, RunError
from lookright.runs.folder import RunFolder


def check_settings(settings: list[str]) -> None:
    bad = [s for s in settings if not s.startswith("eval.")]
    if bad:
        raise ConfigError(f"--set takes eval.KEY=VALUE settings only (training settings are fixed), got {bad}")


def rl_folder(run_dir: Path) -> RunFolder:
    """``run_dir`` as a finished RL run, or a RunError saying what it is instead."""
    from lookright.rl.train import KIND

    hint = "pass a folder written by `lookright rl train`"
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not an RL run folder (no such folder); {hint}")
    folder = RunFolder(run_dir)
    info = folder.info()
    if info is None:
        raise RunError(f"{run_dir} is not an RL run folder (no run.json); {hint}")
    if info.get("kind") != KIND:
        raise RunError(f"{run_dir} is not an RL run folder (it holds a {info.get('kind')} run); {hint}")
    state = folder.state()
    if state in ("interrupted", "failed"):
        what = "failed" if state == "failed" else "was interrupted"
        raise RunError(f"cannot evaluate {run_dir}: its training {what} ({info.get('error', 'the process died')}); "
                       f"train it again with `lookright rl train {run_dir / 'config.yaml'} --run-dir {run_dir}`")
    return folder


def evaluate_run(run_dir: str | Path, settings: list[str] | None = None, bar=None) -> dict:
    """Evaluate the agent in ``run_dir`` with ``eval.*`` ``settings``; return its updated metrics
    (``bar``: a progress bar that counts the evaluation episodes)."""
    from lookright.rl.config import load_rl_config
    from lookright.rl.evaluate import evaluate_agent, load_agent
    from lookright.rl.figures import save_rl_figures

    settings = list(settings or [])
    check_settings(settings)
    run_dir = Path(run_dir)
    with rl_folder(run_dir).finished_for_update("evaluate") as metrics:
        cfg = load_rl_config(run_dir / "config.yaml", settings)
        model = load_agent(run_dir, cfg.agent.device, cfg.agent.algorithm)
        metrics["evaluation"] = evaluate_agent(model, cfg, bar)
        metrics["figures"] = [str(p.relative_to(run_dir)) for p in save_rl_figures(model, cfg, run_dir, metrics)]
        return metrics
