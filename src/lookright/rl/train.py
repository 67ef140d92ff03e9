"""Train one agent from an :class:`RLConfig`, evaluate it, and write its run folder.

The folder follows :mod:`lookright.runs.folder` (kind ``rl``): ``run.json``, ``config.yaml``,
``model.zip`` (SB3's own format, written atomically: ``AlignedPPO.load`` / ``AlignedA2C.load`` read it),
``metrics.json`` (written when the run finishes: training history, evaluation, wall time of
training and evaluation, provenance) and ``figures/``. Every check that can fail on the config
(threads, device, environments, model) runs before the folder is touched; a finished run is
never overwritten. PPO keeps no mid-run checkpoint, so resuming an interrupted or failed run
trains it again in the same folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from lookright.errors import ConfigError
from lookright.rl.config import RLConfig
from lookright.rl.wrappers import make_env
from lookright.atomic import write_file_atomic
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder
from lookright.runs.progress import progress_bar
from lookright.runs.provenance import provenance, resolve_device, set_threads

KIND = "rl"
MODEL = "model.zip"
PACKAGES = ("gymnasium", "stable_baselines3")
#: keys that do not change what is trained (see :func:`lookright.runs.folder.fingerprint`)
FINGERPRINT_IGNORES = ("out_dir", "agent.threads", "agent.device")


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


def make_train_envs(cfg: RLConfig):
    """The vectorised training environments (``env.n_envs`` copies of ``env.id``), after checking
    that the test environment (``env.test_id``) can be built with the same options and observations."""
    env = make_vec_env(lambda: make_env(cfg.env.id, **cfg.env.options), n_envs=cfg.env.n_envs, seed=cfg.seed)
    try:
        test = make_env(cfg.env.test_id, **cfg.env.options)
        test.close()
        if test.observation_space != env.observation_space:
            raise ConfigError(f"env.test_id={cfg.env.test_id} observes {test.observation_space}, but env.id="
                              f"{cfg.env.id} observes {env.observation_space}; the agent needs the same observations")
    except BaseException:
        env.close()
        raise
    return env


def agent_class(algorithm: str):
    """The aligned SB3 algorithm of ``agent.algorithm``."""
    if algorithm == "a2c":
        from lookright.rl.a2c import AlignedA2C

        return AlignedA2C
    from lookright.rl.ppo import AlignedPPO

    return AlignedPPO


def build_model(cfg: RLConfig, env, device: torch.device | str = "cpu"):
    a = cfg.agent
    tile = cfg.env.options.get("tile", 5) if cfg.env.id.startswith("lookright/CueGrid") else None
    patch = a.patch or tile
    if patch is None:
        raise ConfigError(f"set agent.patch (the first convolution's kernel and stride) for env.id={cfg.env.id}")
    ppo_only = dict(batch_size=a.batch_size, n_epochs=a.n_epochs, clip_range=a.clip_range) if a.algorithm == "ppo" else {}
    return agent_class(a.algorithm)(
        "GapCnnPolicy", env, attention_loss=cfg.align.loss, attention_lambda=cfg.align.lambda0,
        attention_warmup=cfg.align.warmup, attention_options=cfg.align.options, counterfactual=cfg.align.counterfactual,
        counterfactual_share=cfg.align.counterfactual_share,
        n_steps=a.n_steps, learning_rate=a.learning_rate, gamma=a.gamma, gae_lambda=a.gae_lambda, ent_coef=a.ent_coef,
        vf_coef=a.vf_coef, max_grad_norm=a.max_grad_norm, seed=cfg.seed, device=device, verbose=0,
        policy_kwargs=dict(patch=patch, channels=tuple(a.channels)), **ppo_only)


def train_agent(cfg: RLConfig, run_dir: str | Path, progress: bool = True, resume: bool = False) -> dict:
    """Train, save, evaluate one agent into ``run_dir``; return its metrics (also in ``metrics.json``).

    ``resume=True`` trains an interrupted or failed run of the same config again; a finished run
    is refused (RunError)."""
    started = time.perf_counter()
    set_threads(cfg.agent.threads, "agent.threads")
    device = resolve_device(cfg.agent.device, "agent.device")
    env = make_train_envs(cfg)
    try:
        model = build_model(cfg, env, device)
        folder = RunFolder(run_dir)
        folder.open(KIND, config_tree(cfg), dump_config(cfg), FINGERPRINT_IGNORES, resume=resume)
        with folder.guard():
            return _train(cfg, model, folder, progress, started)
    finally:
        env.close()


def _train(cfg: RLConfig, model, folder: RunFolder, progress: bool, started: float) -> dict:
    from lookright.rl.evaluate import evaluate_agent
    from lookright.rl.figures import save_rl_figures

    with progress_bar(progress) as bar:
        callback = HistoryCallback(bar, bar.add_task(f"{cfg.name} seed {cfg.seed}", total=cfg.agent.total_timesteps))
        model.learn(cfg.agent.total_timesteps, callback=callback)
        save_model(model, folder.path / MODEL)
        metrics = {"name": cfg.name, "env": cfg.env.id, "seed": cfg.seed, "timesteps": model.num_timesteps,
                   "history": callback.history, "attention_history": model.attention_history}
        metrics["evaluation"] = evaluate_agent(model, cfg, bar)
    metrics["figures"] = [str(p.relative_to(folder.path)) for p in save_rl_figures(model, cfg, folder.path, metrics)]
    metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
    return folder.finish(metrics, provenance(model.device, PACKAGES))


def save_model(model, path: Path) -> Path:
    """``model.save`` onto ``path`` atomically (a unique temporary file beside it, then a rename)."""
    return write_file_atomic(path, model.save)
