"""A2C with the agent alignment terms: ``L = L_pg + c_H L_H + c_V L_V + lambda(t) L_align + alpha L_cf``.

The same extra terms as :class:`lookright.rl.ppo.AlignedPPO` (:mod:`lookright.rl.alignment`) on
Stable-Baselines3's A2C step as it is (one gradient step on the whole rollout, advantage
normalisation if asked, grad-norm clipping), restated in :meth:`AlignedA2C.train` because SB3
has no hook for an extra loss: the loss is algorithm-agnostic.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from stable_baselines3 import A2C
from stable_baselines3.common.utils import explained_variance

from lookright.losses import create_loss
from lookright.rl.alignment import AttentionTerms, new_log
from lookright.rl.policy import GapActorCriticPolicy


class AlignedA2C(AttentionTerms, A2C):
    policy_aliases = {**A2C.policy_aliases, "GapCnnPolicy": GapActorCriticPolicy}

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        loss_fn = None if self.attention_loss is None else create_loss(self.attention_loss, **self.attention_options)
        lam = self.current_lambda()
        generator = th.Generator().manual_seed((self.seed or 0) * 1_000_003 + self._n_updates)
        logs = new_log()
        for batch in self.rollout_buffer.get(batch_size=None):
            actions = batch.actions.long().flatten()
            values, log_prob, entropy, cam, _, pair = self.forward_minibatch(batch.observations, actions, generator)
            values = values.flatten()
            advantages = batch.advantages
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = -(advantages * log_prob).mean()
            value_loss = F.mse_loss(batch.returns, values)
            entropy_loss = -th.mean(entropy)
            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
            self.check_finite(loss, 0, 0, lam)
            extra = self.extra_loss(loss_fn, batch.observations, cam, lam, logs, pair)
            if extra is not None:
                loss = loss + extra
                self.check_finite(loss, 0, 0, lam)
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance",
                           explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()))
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        self.record_attention(logs, lam, value_loss.item(), -entropy_loss.item())
