"""The terms an aligned agent adds to its algorithm's loss, whatever the algorithm.

``L = L_algorithm + lambda(t) * L_align + alpha * L_cf``:

* ``L_align = loss(CAM_a(s), M(s))`` over the minibatch, with ``a`` the action taken in the
  rollout, ``M`` the observation's mask reduced to the attention grid (:func:`cell_mask`) and
  ``loss`` any lookright alignment loss (``camal``, ``kl``, ``camal-bce``);
  ``lambda(t) = lambda0 * min(1, t / warmup)`` with ``t`` the fraction of training done.
* ``L_cf`` (mask-guided counterfactual consistency, weight ``alpha = align.counterfactual``):
  each observation ``s`` keeps its masked pixels and takes everything outside the mask from
  another observation of the minibatch (``s' = M s + (1 - M) context(s_p)``, the supervised
  counterfactual of :func:`lookright.data.counterfactual.swap_fill`, partners a seeded
  derangement); ``L_cf = KL(pi(.|s) || pi(.|s')) + (V(s) - V(s'))^2`` with ``pi(.|s)`` and
  ``V(s)`` held fixed, so the policy learns to act the same whatever lies outside the mask (a
  cue that is only read, never attended, is removed too), in the form of DrAC's augmentation
  regulariser. ``align.counterfactual_share`` (``rho``) computes ``L_cf`` on the first
  ``ceil(rho * B)`` states of each minibatch of ``B`` (minibatches are random draws of the rollout,
  so this is an unbiased subsample). The counterfactual observations join the minibatch in the
  update's own forward pass (:meth:`AttentionTerms.forward_minibatch`), so the term costs
  ``rho * B`` more states in one pass, not a pass of its own.

Both are zero and cost nothing when unset: ``align.loss: null`` and ``counterfactual: 0`` give
the algorithm's own update exactly (tested against stock SB3 PPO).
"""

from __future__ import annotations

import math

import torch as th
import torch.nn.functional as F

from lookright.data.counterfactual import partners, swap_fill
from lookright.errors import ConfigError, TrainingDiverged
from lookright.losses import create_loss
from lookright.rl.policy import cell_mask
from lookright.rl.wrappers import MASK, PIXELS


class AttentionTerms:
    """Mixin placed before an SB3 on-policy algorithm (``class AlignedPPO(AttentionTerms, PPO)``):
    the alignment settings, ``lambda(t)``, the extra loss of a minibatch (:meth:`extra_loss`) for
    the subclass's ``train``, and the checks that the policy has a GAP head and the observations a mask."""

    def __init__(self, policy, env, attention_loss: str | None = None, attention_lambda: float = 1.0,
                 attention_warmup: float = 0.0, attention_options: dict | None = None, counterfactual: float = 0.0,
                 counterfactual_share: float = 1.0, **kwargs) -> None:
        from stable_baselines3.common.logger import Logger

        if attention_lambda < 0 or not 0 <= attention_warmup <= 1 or counterfactual < 0:
            raise ConfigError("attention_lambda and counterfactual must be >= 0 and attention_warmup in [0, 1]")
        if not 0 < counterfactual_share <= 1:
            raise ConfigError(f"counterfactual_share must be in (0, 1], got {counterfactual_share}")
        self.attention_loss = attention_loss
        self.attention_lambda = float(attention_lambda)
        self.attention_warmup = float(attention_warmup)
        self.attention_options = dict(attention_options or {})
        self.counterfactual = float(counterfactual)
        self.counterfactual_share = float(counterfactual_share)
        self.attention_history: list[dict] = []
        if attention_loss is not None:
            create_loss(attention_loss, **self.attention_options)  # fail now on a bad name or option
        super().__init__(policy, env, **kwargs)
        if self.verbose == 0 and self.tensorboard_log is None:
            # SB3's default logger would create an empty tempdir/SB3-<time> folder on every learn()
            self.set_logger(Logger(folder=None, output_formats=[]))

    def _setup_model(self) -> None:
        from gymnasium import spaces

        super()._setup_model()
        if not hasattr(self.policy, "evaluate_actions_with_attention"):
            raise ConfigError(f"{type(self).__name__} needs a policy with a GAP head: use policy='GapCnnPolicy'")
        if not isinstance(self.observation_space, spaces.Dict) or MASK not in self.observation_space.spaces:
            raise ConfigError(f"{type(self).__name__} needs observations with a 'mask' entry: wrap the env in "
                              "MaskInObservation")

    def current_lambda(self) -> float:
        if self.attention_loss is None:
            return 0.0
        done = 1.0 - self._current_progress_remaining
        ramp = 1.0 if self.attention_warmup == 0 else min(1.0, done / self.attention_warmup)
        return self.attention_lambda * ramp

    def check_finite(self, loss: th.Tensor, epoch: int, step: int, lam: float) -> None:
        """TrainingDiverged naming the settings to lower when ``loss`` is NaN or infinite."""
        if th.isfinite(loss):
            return
        lr = self.policy.optimizer.param_groups[0]["lr"]
        cause = f"agent.learning_rate={lr:g}" + (
            f" or align.lambda0={self.attention_lambda:g} (lambda now {lam:g})" if self.attention_loss else "")
        raise TrainingDiverged(
            f"the {type(self).__name__.removeprefix('Aligned')} loss is {float(loss.detach())} at timestep {self.num_timesteps} "
            f"(update epoch {epoch + 1}, minibatch {step + 1}); training stopped there. Lower {cause}")

    def forward_minibatch(self, observations: dict, actions: th.Tensor, generator: th.Generator):
        """The update's forward pass over a minibatch of ``B`` states: ``(values, log_prob, entropy,
        cam, logits, pair)`` of the minibatch, as ``evaluate_actions_with_attention`` gives them.
        With the counterfactual term on, the counterfactual observations of the minibatch's first
        ``k = ceil(rho * B)`` states are appended to the same pass and ``pair`` is ``(logits[:k],
        values[:k], logits_cf, values_cf)`` (else None)."""
        n = len(actions)
        cf = None
        if self.counterfactual > 0:
            cf = counterfactual_observations(subsample(observations, self.counterfactual_share), generator)
            k = len(cf[MASK])
            observations = {key: th.cat([observations[key].to(cf[key].dtype), cf[key]]) for key in cf}
            actions = th.cat([actions, actions[:k]])
        values, log_prob, entropy, cam, logits = self.policy.evaluate_actions_with_attention(
            observations, actions, with_logits=True)
        pair = None if cf is None else (logits[:k], values[:k], logits[n:], values[n:])
        return values[:n], log_prob[:n], entropy[:n], cam[:n], logits[:n], pair

    def extra_loss(self, loss_fn, observations: dict, cam: th.Tensor, lam: float, logs: dict,
                   pair: tuple | None = None) -> th.Tensor | None:
        """``lambda * L_align + alpha * L_cf`` of a minibatch (None when neither is set); logs
        ``align``, ``skipped`` (states with an empty mask) and ``counterfactual``. ``pair``: the
        clean and counterfactual outputs of :meth:`forward_minibatch`."""
        extra = None
        if loss_fn is not None:
            align, valid = loss_fn.evaluate(cam, cell_mask(observations[MASK], tuple(cam.shape[-2:])))
            logs["align"].append(align.item())
            logs["skipped"].append(len(cam) - valid)
            if lam > 0:
                extra = lam * align
        if self.counterfactual > 0:
            if pair is None:
                raise ValueError("the counterfactual term needs the outputs of forward_minibatch")
            cf = consistency(*pair)
            logs["counterfactual"].append(cf.item())
            extra = self.counterfactual * cf if extra is None else extra + self.counterfactual * cf
        return extra

    def record_attention(self, logs: dict, lam: float, value_loss: float, entropy: float) -> None:
        mean = lambda key: sum(logs[key]) / len(logs[key]) if logs[key] else None  # noqa: E731
        if self.attention_loss is not None:
            self.logger.record("train/attention_loss", mean("align"))
            self.logger.record("train/attention_lambda", lam)
            self.logger.record("train/attention_skipped", float(sum(logs["skipped"])))
        if self.counterfactual > 0:
            self.logger.record("train/counterfactual_loss", mean("counterfactual"))
        self.attention_history.append({"timesteps": self.num_timesteps, "attention_loss": mean("align"),
                                       "counterfactual_loss": mean("counterfactual"), "attention_lambda": lam,
                                       "value_loss": value_loss, "entropy": entropy})


def subsample(observations: dict, share: float) -> dict:
    """The first ``ceil(share * B)`` (at least 2, so a partner exists) of a minibatch's ``B`` states."""
    n = len(next(iter(observations.values())))
    k = min(n, max(2, math.ceil(share * n)))
    return observations if k == n else {key: v[:k] for key, v in observations.items()}


def counterfactual_observations(observations: dict, generator: th.Generator) -> dict:
    """Each observation's masked pixels with everything outside its mask from a partner's frame."""
    pixels = observations[PIXELS].float()
    mask = (observations[MASK] > 0).float()[:, None]
    p = partners(len(pixels), generator).to(pixels.device)
    return {PIXELS: swap_fill(pixels, mask, pixels[p], mask[p]), MASK: observations[MASK]}


def consistency(logits: th.Tensor, value: th.Tensor, logits_cf: th.Tensor, value_cf: th.Tensor) -> th.Tensor:
    """``KL(pi(.|s) || pi(.|s')) + (V(s) - V(s'))^2``, batch means, with ``pi(.|s)`` and ``V(s)``
    (``logits``, ``value``) held fixed."""
    target = F.log_softmax(logits.detach(), dim=1)
    kl = (target.exp() * (target - F.log_softmax(logits_cf, dim=1))).sum(dim=1).mean()
    return kl + F.mse_loss(value_cf, value.detach())


def new_log(*extra: str) -> dict[str, list[float]]:
    """Per-update lists of the logged quantities."""
    return {k: [] for k in ("align", "skipped", "counterfactual", *extra)}
