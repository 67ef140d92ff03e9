"""Carry each observation's mask through vectorised rollouts, and build environments by id.

:class:`MaskInObservation` turns a pixel environment that reports ``info["mask"]`` into one
with dict observations ``{"pixels": (C, H, W) uint8, "mask": (H, W) uint8}``. Putting the mask
in the observation (rather than in ``info``) keeps it aligned with its frame through
auto-resetting vector environments and the rollout buffer; the policy reads only ``pixels``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lookright.errors import ConfigError, MaskError

PIXELS, MASK = "pixels", "mask"


def pixel_shape(space: gym.Space) -> tuple[int, int, int]:
    """``(C, H, W)`` of a channel-first uint8 image space, or a clear error."""
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[0] in (1, 3, 4) and space.shape[0] < min(space.shape[1:])):
        raise ConfigError(
            f"the observation space {space} has no pixels: attention alignment needs channel-first uint8 "
            "images (Box of shape (C, H, W), C in 1/3/4); wrap the environment so that it returns images "
            "(e.g. gymnasium.wrappers.AddRenderObservation, then transpose to channel-first)")
    return tuple(space.shape)


class MaskInObservation(gym.Wrapper):
    """``obs -> {"pixels": obs, "mask": info["mask"]}``; the mask must be ``(H, W)`` like the pixels."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        c, h, w = pixel_shape(env.observation_space)
        self.observation_space = spaces.Dict({
            PIXELS: env.observation_space,
            MASK: spaces.Box(0, 1, (h, w), dtype=np.uint8),
        })

    def _combine(self, obs: np.ndarray, info: dict) -> dict:
        if "mask" not in info:
            raise MaskError("the environment reported no info['mask']; MaskInObservation needs one per step")
        mask = np.asarray(info["mask"])
        expected = self.observation_space[MASK].shape
        if mask.shape != expected:
            raise MaskError(
                f"info['mask'] has shape {mask.shape} but the observation is {self.observation_space[PIXELS].shape}: "
                f"the mask must be (H, W) = {expected}, one value per pixel")
        return {PIXELS: obs, MASK: (mask > 0).astype(np.uint8)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._combine(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._combine(obs, info), reward, terminated, truncated, info


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` wrapped in :class:`MaskInObservation`."""
    import lookright.rl  # noqa: F401  (registers the lookright environments)

    if env_id not in gym.registry:
        ours = sorted(k for k in gym.registry if k.startswith("lookright/"))
        raise ConfigError(f"unknown environment id {env_id!r}; lookright registers: {', '.join(ours)} "
                          "(any gymnasium id works if its environment reports info['mask'])")
    try:
        env = gym.make(env_id, **kwargs)
    except TypeError as exc:  # an option the environment's constructor does not take
        reason = str(exc).split(" was raised from")[0]
        raise ConfigError(
            f"the environment {env_id!r} (env.id / env.test_id) rejects env.options={kwargs} ({reason}); "
            "set env.options for this environment, e.g. env.options={} to clear inherited ones") from None
    return MaskInObservation(env)
