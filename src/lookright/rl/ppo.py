"""PPO with an attention-alignment term: ``L = L_clip + c_H L_H + c_V L_V + lambda(t) L_align``.

``L_align = loss(CAM_a(s), M(s))`` over the minibatch, with ``a`` the action taken in the
rollout, ``M`` the observation's mask reduced to the attention grid (:func:`cell_mask`) and
``loss`` any lookright alignment loss (``camal``, ``kl``, ``camal-bce``). ``lambda(t) =
lambda0 * min(1, t / warmup)`` with ``t`` the fraction of training done (``warmup = 0``:
constant). The rest of the update is Stable-Baselines3's PPO step as it is (clipped surrogate,
optional value clipping, entropy bonus, advantage normalisation, grad-norm clipping, target-KL
early stop); SB3 offers no hook to add a loss, so :meth:`AlignedPPO.train` restates it with the
extra term. Logging, callbacks and ``save``/``load`` are SB3's own (with ``verbose=0`` and no
TensorBoard folder the logger has no outputs). A NaN or infinite loss stops training at that
minibatch with TrainingDiverged.
"""

from __future__ import annotations

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import explained_variance

from lookright.errors import ConfigError, TrainingDiverged
from lookright.losses import create_loss
from lookright.rl.policy import GapActorCriticPolicy, cell_mask
from lookright.rl.wrappers import MASK


class AlignedPPO(PPO):
    policy_aliases = {**PPO.policy_aliases, "GapCnnPolicy": GapActorCriticPolicy}

    def __init__(self, policy, env, attention_loss: str | None = None, attention_lambda: float = 1.0,
                 attention_warmup: float = 0.0, attention_options: dict | None = None, **kwargs) -> None:
        if attention_lambda < 0 or not 0 <= attention_warmup <= 1:
            raise ConfigError("attention_lambda must be >= 0 and attention_warmup in [0, 1]")
        self.attention_loss = attention_loss
        self.attention_lambda = float(attention_lambda)
        self.attention_warmup = float(attention_warmup)
        self.attention_options = dict(attention_options or {})
        self.attention_history: list[dict] = []
        if attention_loss is not None:
            create_loss(attention_loss, **self.attention_options)  # fail now on a bad name or option
        super().__init__(policy, env, **kwargs)
        if self.verbose == 0 and self.tensorboard_log is None:
            # SB3's default logger would create an empty tempdir/SB3-<time> folder on every learn()
            self.set_logger(Logger(folder=None, output_formats=[]))

    def _setup_model(self) -> None:
        super()._setup_model()
        if not hasattr(self.policy, "evaluate_actions_with_attention"):
            raise ConfigError("AlignedPPO needs a policy with a GAP head: use policy='GapCnnPolicy'")
        if not isinstance(self.observation_space, spaces.Dict) or MASK not in self.observation_space.spaces:
            raise ConfigError("AlignedPPO needs observations with a 'mask' entry: wrap the env in MaskInObservation")

    def current_lambda(self) -> float:
        if self.attention_loss is None:
            return 0.0
        done = 1.0 - self._current_progress_remaining
        ramp = 1.0 if self.attention_warmup == 0 else min(1.0, done / self.attention_warmup)
        return self.attention_lambda * ramp

    def _check_finite(self, loss: th.Tensor, epoch: int, step: int, lam: float) -> None:
        """TrainingDiverged naming the settings to lower when ``loss`` is NaN or infinite."""
        if th.isfinite(loss):
            return
        lr = self.policy.optimizer.param_groups[0]["lr"]
        cause = f"agent.learning_rate={lr:g}" + (
            f" or align.lambda0={self.attention_lambda:g} (lambda now {lam:g})" if self.attention_loss else "")
        raise TrainingDiverged(
            f"the PPO loss is {float(loss.detach())} at timestep {self.num_timesteps} (update epoch {epoch + 1}, "
            f"minibatch {step + 1}); training stopped there. Lower {cause}")

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        loss_fn = None if self.attention_loss is None else create_loss(self.attention_loss, **self.attention_options)
        lam = self.current_lambda()
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "clip", "kl", "align", "skipped")}
        continue_training = True
        for epoch in range(self.n_epochs):
            for step, batch in enumerate(self.rollout_buffer.get(self.batch_size)):
                actions = batch.actions.long().flatten()
                values, log_prob, entropy, cam = self.policy.evaluate_actions_with_attention(batch.observations, actions)
                values = values.flatten()
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - batch.old_log_prob)
                policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                if clip_range_vf is not None:
                    values = batch.old_values + th.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(batch.returns, values)
                entropy_loss = -th.mean(entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if loss_fn is not None:
                    self._check_finite(loss, epoch, step, lam)  # NaN weights: stop before the map is read
                    align, valid = loss_fn.evaluate(cam, cell_mask(batch.observations[MASK], tuple(cam.shape[-2:])))
                    logs["align"].append(align.item())
                    logs["skipped"].append(len(cam) - valid)
                    if lam > 0:
                        loss = loss + lam * align
                self._check_finite(loss, epoch, step, lam)
                with th.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio).item()
                logs["pg"].append(policy_loss.item())
                logs["value"].append(value_loss.item())
                logs["entropy"].append(entropy_loss.item())
                logs["clip"].append(th.mean((th.abs(ratio - 1) > clip_range).float()).item())
                logs["kl"].append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        mean = lambda key: float(np.mean(logs[key])) if logs[key] else float("nan")  # noqa: E731
        self.logger.record("train/entropy_loss", mean("entropy"))
        self.logger.record("train/policy_gradient_loss", mean("pg"))
        self.logger.record("train/value_loss", mean("value"))
        self.logger.record("train/approx_kl", mean("kl"))
        self.logger.record("train/clip_fraction", mean("clip"))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance",
                           explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if loss_fn is not None:
            self.logger.record("train/attention_loss", mean("align"))
            self.logger.record("train/attention_lambda", lam)
            self.logger.record("train/attention_skipped", float(np.sum(logs["skipped"])))
        self.attention_history.append({"timesteps": self.num_timesteps, "attention_loss": mean("align") if logs["align"] else None,
                                       "attention_lambda": lam, "value_loss": mean("value"), "entropy": -mean("entropy")})
