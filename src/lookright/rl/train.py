"""Train one agent from an :class:`RLConfig`, evaluate it, and write its run folder.

Run folder: ``config.yaml``, ``model.zip`` (SB3's own format: ``AlignedPPO.load`` reads it),
``metrics.json`` (seed, commit, versions, device, wall time, training history, evaluation) and
``figures/`` (training curves, episode strips with the attention overlay).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from lookright.rl.config import RLConfig
from lookright.rl.wrappers import make_env
from lookright.runs.progress import progress_bar
from lookright.train.provenance import git_commit, versions

PACKAGES = ("gymnasium", "stable_baselines3")


class HistoryCallback(BaseCallback):
    """Advances a progress bar and records the mean training return after every rollout."""

    def __init__(self, bar, task) -> None:
        super().__init__()
        self.bar, self.task = bar, task
        self.history: list[dict] = []

    def _on_step(self) -> bool:
        self.bar.advance(self.task, self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        episodes = list(self.model.ep_info_buffer)
        if episodes:
            self.history.append({"timesteps": self.num_timesteps,
                                 "return": sum(e["r"] for e in episodes) / len(episodes),
                                 "success": sum(e["r"] > 0 for e in episodes) / len(episodes)})


def build_model(cfg: RLConfig, env):
    from lookright.rl.ppo import AlignedPPO

    a = cfg.agent
    tile = cfg.env.options.get("tile", 5) if cfg.env.id.startswith("lookright/CueGrid") else None
    patch = a.patch or tile
    if patch is None:
        from lookright.errors import ConfigError
        raise ConfigError("set agent.patch (the first convolution's kernel and stride) for this environment")
    return AlignedPPO(
        "GapCnnPolicy", env, attention_loss=cfg.align.loss, attention_lambda=cfg.align.lambda0,
        attention_warmup=cfg.align.warmup, attention_options=cfg.align.options,
        n_steps=a.n_steps, batch_size=a.batch_size, n_epochs=a.n_epochs, learning_rate=a.learning_rate,
        gamma=a.gamma, gae_lambda=a.gae_lambda, clip_range=a.clip_range, ent_coef=a.ent_coef, vf_coef=a.vf_coef,
        max_grad_norm=a.max_grad_norm, seed=cfg.seed, device=a.device, verbose=0,
        policy_kwargs=dict(patch=patch, channels=tuple(a.channels)))


def train_agent(cfg: RLConfig, run_dir: str | Path, progress: bool = True, evaluate: bool = True) -> dict:
    from importlib import metadata

    from lookright.rl.evaluate import evaluate_agent
    from lookright.rl.figures import save_rl_figures

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    torch.set_num_threads(cfg.agent.threads)
    env = make_vec_env(lambda: make_env(cfg.env.id, **cfg.env.options), n_envs=cfg.env.n_envs, seed=cfg.seed)
    model = build_model(cfg, env)
    start = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{cfg.name} seed {cfg.seed}", total=cfg.agent.total_timesteps)
        callback = HistoryCallback(bar, task)
        model.learn(cfg.agent.total_timesteps, callback=callback)
    train_time = time.perf_counter() - start
    model.save(run_dir / "model.zip")
    env.close()
    found = versions()
    for name in PACKAGES:
        found[name] = metadata.version(name)
    metrics = {"name": cfg.name, "seed": cfg.seed, "commit": git_commit(), "versions": found,
               "device": str(model.device), "threads": cfg.agent.threads, "train_time_s": train_time,
               "timesteps": model.num_timesteps, "history": callback.history,
               "attention_history": model.attention_history}
    if evaluate:
        start = time.perf_counter()
        metrics["evaluation"] = evaluate_agent(model, cfg)
        metrics["eval_time_s"] = time.perf_counter() - start
        metrics["figures"] = [str(p.relative_to(run_dir)) for p in save_rl_figures(model, cfg, run_dir, metrics)]
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
