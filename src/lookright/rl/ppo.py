"""PPO with the agent alignment terms: ``L = L_clip + c_H L_H + c_V L_V + lambda(t) L_align + alpha L_cf``.

The extra terms are :mod:`lookright.rl.alignment`'s. The rest of the update is
Stable-Baselines3's PPO step as it is (clipped surrogate, optional value clipping, entropy
bonus, advantage normalisation, grad-norm clipping, target-KL early stop); SB3 offers no hook to
add a loss, so :meth:`AlignedPPO.train` restates it with the extra terms. Logging, callbacks and
``save``/``load`` are SB3's own (with ``verbose=0`` and no TensorBoard folder the logger has no
outputs). A NaN or infinite loss stops training at that minibatch with TrainingDiverged.
"""

from __future__ import annotations

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance

from lookright.losses import create_loss
from lookright.rl.alignment import AttentionTerms, new_log
from lookright.rl.policy import GapActorCriticPolicy


class AlignedPPO(AttentionTerms, PPO):
    policy_aliases = {**PPO.policy_aliases, "GapCnnPolicy": GapActorCriticPolicy}

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        loss_fn = None if self.attention_loss is None else create_loss(self.attention_loss, **self.attention_options)
        lam = self.current_lambda()
        generator = th.Generator().manual_seed((self.seed or 0) * 1_000_003 + self._n_updates)
        logs = new_log("pg", "value", "entropy", "clip", "kl")
        continue_training = True
        for epoch in range(self.n_epochs):
            for step, batch in enumerate(self.rollout_buffer.get(self.batch_size)):
                actions = batch.actions.long().flatten()
                values, log_prob, entropy, cam, _, pair = self.forward_minibatch(batch.observations, actions, generator)
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
                self.check_finite(loss, epoch, step, lam)  # NaN weights: stop before the map is read
                extra = self.extra_loss(loss_fn, batch.observations, cam, lam, logs, pair)
                if extra is not None:
                    loss = loss + extra
                    self.check_finite(loss, epoch, step, lam)
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
        self.record_attention(logs, lam, mean("value"), -mean("entropy"))
