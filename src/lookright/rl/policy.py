"""An actor-critic policy whose features end in global average pooling, so CAM exists.

``A = trunk(pixels / 255)`` is ``(B, K, h, w)``; the shared feature is ``f = mean_ij A``; the
action logits are ``W_pi f + b_pi`` and the value ``w_v . f + b_v`` (``net_arch`` is empty:
no hidden layers between the pooled features and the heads). Hence, exactly,

    logit_a = mean_ij CAM_a(i, j) + b_a,   CAM_a(i, j) = sum_k W_pi[a, k] A_k(i, j),

and likewise for the value, whose CAM (weights ``w_v``) equals its Grad-CAM up to a factor.
The trunk's first convolution has kernel = stride = ``patch`` (by default the environment's
tile), so the attention grid has one cell per grid cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from lookright.attention.cam import class_activation_map
from lookright.errors import ConfigError
from lookright.rl.wrappers import MASK, PIXELS, pixel_shape


class GapCnnExtractor(BaseFeaturesExtractor):
    """``pixels -> mean_ij trunk(pixels)``; ``trunk`` = patch conv, then 3x3 convs, ReLU after each."""

    def __init__(self, observation_space: spaces.Dict, patch: int = 5, channels: tuple[int, ...] = (32, 64, 64)):
        if not isinstance(observation_space, spaces.Dict) or PIXELS not in observation_space.spaces:
            raise ConfigError("GapCnnExtractor needs dict observations with a 'pixels' entry (wrap with MaskInObservation)")
        c, h, w = pixel_shape(observation_space[PIXELS])
        if h % patch or w % patch:
            raise ConfigError(f"observation {h}x{w} is not a whole number of {patch}-pixel patches; set agent.patch")
        super().__init__(observation_space, features_dim=channels[-1])
        layers: list[nn.Module] = [nn.Conv2d(c, channels[0], patch, stride=patch), nn.ReLU()]
        for a, b in zip(channels, channels[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)

    def feature_maps(self, observations: dict) -> torch.Tensor:
        return self.trunk(observations[PIXELS])

    def forward(self, observations: dict) -> torch.Tensor:
        return self.feature_maps(observations).mean(dim=(2, 3))


class GapActorCriticPolicy(MultiInputActorCriticPolicy):
    """SB3's actor-critic with :class:`GapCnnExtractor`, a shared trunk and linear heads."""

    def __init__(self, observation_space, action_space, lr_schedule, patch: int = 5,
                 channels: tuple[int, ...] = (32, 64, 64), **kwargs) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise ConfigError(f"CAM for the chosen action needs a discrete action space, got {action_space}")
        for key in ("net_arch", "features_extractor_class", "share_features_extractor"):
            if key in kwargs:
                raise ConfigError(f"GapActorCriticPolicy fixes {key}; remove it from the policy options")
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch=dict(pi=[], vf=[]),
            features_extractor_class=GapCnnExtractor,
            features_extractor_kwargs=dict(patch=patch, channels=tuple(channels)),
            share_features_extractor=True, **kwargs)

    def _maps(self, obs: dict) -> torch.Tensor:
        pre = preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        return self.features_extractor.feature_maps(pre)

    def evaluate_actions_with_attention(self, obs: dict, actions: torch.Tensor, with_logits: bool = False):
        """``(values, log_prob, entropy, cam)`` from one forward; ``cam`` is ``(B, h, w)`` for ``actions``;
        ``with_logits`` appends the action logits ``(B, A)``."""
        maps = self._maps(obs)
        features = maps.mean(dim=(2, 3))
        logits = self.action_net(features)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        cam = class_activation_map(maps, self.action_net.weight, actions.long().flatten())
        out = (self.value_net(features), distribution.log_prob(actions), distribution.entropy(), cam)
        return (*out, logits) if with_logits else out

    def logits_and_value(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action logits (B, A), value (B, 1))`` from one forward."""
        features = self._maps(obs).mean(dim=(2, 3))
        return self.action_net(features), self.value_net(features)

    def action_cam(self, obs: dict, actions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cam, logits)``; ``actions=None`` takes the most probable action."""
        maps = self._maps(obs)
        logits = self.action_net(maps.mean(dim=(2, 3)))
        chosen = logits.argmax(dim=1) if actions is None else actions.long().flatten()
        return class_activation_map(maps, self.action_net.weight, chosen), logits

    def value_cam(self, obs: dict) -> torch.Tensor:
        """CAM of the value head ``(B, h, w)``: ``sum_k w_v[k] A_k``."""
        return class_activation_map(self._maps(obs), self.value_net.weight, torch.zeros(
            obs[PIXELS].shape[0], dtype=torch.long, device=self.device))


class PolicyHead(nn.Module):
    """A policy as a plain ``pixels in [0, 1] -> logits`` (or ``-> value``) module, so that
    lookright's extractors (``cam``, ``gradcam``, ``input-gradients``) apply to it unchanged."""

    def __init__(self, policy: GapActorCriticPolicy, head: str = "action") -> None:
        super().__init__()
        if head not in ("action", "value"):
            raise ConfigError(f"head must be 'action' or 'value', got {head!r}")
        self.policy, self.head = policy, head
        self.cam_layer = "policy.features_extractor.trunk"
        self.classifier = "policy.action_net" if head == "action" else "policy.value_net"

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.policy.features_extractor.trunk(pixels).mean(dim=(2, 3))
        return self.policy.action_net(features) if self.head == "action" else self.policy.value_net(features)


def cell_mask(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` pixel mask -> ``(B, h, w)`` cell mask: 1 where any pixel of the cell is set
    (max pooling; nearest resizing would sample one pixel per cell and miss thin glyphs)."""
    if mask.dim() != 3:
        raise ConfigError(f"mask must be (B, H, W), got {tuple(mask.shape)}")
    return F.adaptive_max_pool2d(mask[:, None].float(), grid)[:, 0]


__all__ = ["GapActorCriticPolicy", "GapCnnExtractor", "PolicyHead", "cell_mask", "MASK", "PIXELS"]
