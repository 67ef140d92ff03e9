"""Configuration of an RL run: YAML + ``key=value`` overrides (same loader as the core), validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lookright.runs.config import RunConfigBase, Strict, check_fractions, load_config


class EnvConfig(Strict):
    id: str = "lookright/CueGrid-v0"
    test_id: str = "lookright/CueGrid-Shifted-v0"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of both environments")
    n_envs: int = Field(8, ge=1)


class AgentConfig(Strict):
    algorithm: Literal["ppo", "a2c"] = Field("ppo", description="the SB3 algorithm the alignment terms join")
    total_timesteps: int = Field(300_000, ge=1)
    n_steps: int = Field(128, ge=2, description="rollout length per environment")
    batch_size: int = Field(256, ge=2)
    n_epochs: int = Field(4, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    gamma: float = Field(0.95, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    patch: int | None = Field(None, ge=1, description="first-conv kernel = stride; default the env's tile")
    channels: list[int] = Field(default_factory=lambda: [32, 64, 64])
    device: str = "cpu"
    threads: int = Field(1, ge=1)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[int]) -> list[int]:
        if not v or any(c < 1 for c in v):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {v}")
        return v


class AlignConfig(Strict):
    loss: str | None = None  # None: vanilla PPO; camal | kl | camal-bce
    lambda0: float = Field(1.0, ge=0)
    warmup: float = Field(0.0, ge=0, le=1, description="fraction of training over which lambda ramps up")
    counterfactual: float = Field(0.0, ge=0, description="weight of the mask-guided counterfactual consistency "
                                                         "term (lookright.rl.alignment); 0: off")
    counterfactual_share: float = Field(1.0, gt=0, le=1, description="share of each minibatch the counterfactual "
                                                                     "term is computed on (its cost scales with it)")
    options: dict[str, Any] = Field(default_factory=dict)


class RLEvalConfig(Strict):
    episodes: int = Field(500, ge=1, description="episodes per level distribution (same level seeds for every run)")
    level_seed: int = Field(1_000_000, description="first level seed of the evaluation episodes")
    max_states: int = Field(2000, ge=1, description="states (from test-level episodes) for attention metrics")
    top_k: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2])
    masking_episodes: int = Field(200, ge=1, description="episodes per masked-observation return; "
                                                         "at most eval.episodes")
    iou_threshold: float = Field(0.5, gt=0, le=1)
    frames: int = Field(8, ge=1, description="frames per episode strip in the figures")

    @field_validator("top_k")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        return check_fractions(v, include_one=False)

    @model_validator(mode="after")
    def _masking_follows_episodes(self) -> RLEvalConfig:
        """The masked returns are compared with the first ``masking_episodes`` clean test episodes."""
        self.masking_episodes = min(self.masking_episodes, self.episodes)
        return self


class RLConfig(RunConfigBase):
    name: str = "ppo"
    env: EnvConfig = Field(default_factory=EnvConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    eval: RLEvalConfig = Field(default_factory=RLEvalConfig)


def load_rl_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RLConfig:
    return load_config(path, overrides, schema=RLConfig)
