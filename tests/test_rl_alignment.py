"""The agent alignment terms are algorithm-agnostic and cost nothing when unset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env

import lookright.rl  # noqa: F401  (registers the environments)
from lookright.rl.a2c import AlignedA2C
from lookright.rl.alignment import consistency, counterfactual_observations
from lookright.rl.policy import GapActorCriticPolicy
from lookright.rl.ppo import AlignedPPO
from lookright.rl.wrappers import MASK, PIXELS, make_env

torch.set_num_threads(1)
PPO_KW = dict(n_steps=64, batch_size=64, n_epochs=2, learning_rate=1e-3)
A2C_KW = dict(n_steps=16, learning_rate=1e-3)


def counterfactual_consistency(policy, observations: dict, clean, generator) -> torch.Tensor:
    """The term with its observations and their counterfactuals through a pass each (the reference
    for the update's fused pass): ``clean = (logits, values)``, or None for a forward without a graph."""
    if clean is None:
        with torch.no_grad():
            clean = policy.logits_and_value(observations)
    return consistency(*clean, *policy.logits_and_value(counterfactual_observations(observations, generator)))


def agent(cls, policy="GapCnnPolicy", seed=0, **kwargs):
    env = make_vec_env(lambda: make_env("lookright/CueGrid-v0"), n_envs=2, seed=seed)
    return cls(policy, env, seed=seed, device="cpu", policy_kwargs=dict(patch=5, channels=(8, 16)), **kwargs)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


@pytest.mark.parametrize("stock, aligned, kw", [(PPO, AlignedPPO, PPO_KW), (A2C, AlignedA2C, A2C_KW)], ids=["ppo", "a2c"])
def test_lambda_zero_is_the_stock_algorithm(stock, aligned, kw):
    """SB3's own update with the same policy, seed and rollouts: identical weights, bit for bit."""
    reference = agent(stock, GapActorCriticPolicy, **kw)
    reference.learn(256)
    for settings in ({"attention_loss": None}, {"attention_loss": "camal", "attention_lambda": 0.0}):
        model = agent(aligned, **settings, **kw)
        model.learn(256)
        theirs, ours = weights(reference), weights(model)
        assert all(torch.equal(theirs[k], ours[k]) for k in theirs), settings


@pytest.mark.parametrize("cls, kw", [(AlignedPPO, PPO_KW), (AlignedA2C, A2C_KW)], ids=["ppo", "a2c"])
def test_the_alignment_term_trains_either_algorithm(cls, kw):
    plain, aligned = agent(cls, attention_loss="camal", attention_lambda=0.0, **kw), agent(
        cls, attention_loss="camal", attention_lambda=5.0, **kw)
    plain.learn(128)
    aligned.learn(128)
    assert aligned.attention_history[-1]["attention_loss"] is not None
    assert aligned.logger.name_to_value["train/attention_lambda"] == 5.0
    a, b = weights(plain), weights(aligned)
    assert not torch.equal(a["action_net.weight"], b["action_net.weight"])  # the term entered the gradient


def observations(n=6, seed=0):
    env = make_env("lookright/CueGrid-v0")
    obs = [env.reset(seed=seed + i)[0] for i in range(n)]
    return {PIXELS: torch.as_tensor(np.stack([o[PIXELS] for o in obs])).float(),
            MASK: torch.as_tensor(np.stack([o[MASK] for o in obs]))}


def test_counterfactual_observations_keep_the_mask_and_swap_the_rest():
    obs = observations()
    cf = counterfactual_observations(obs, torch.Generator().manual_seed(0))
    inside = obs[MASK].bool()[:, None].expand_as(obs[PIXELS])
    assert torch.equal(cf[PIXELS][inside], obs[PIXELS][inside])  # agent and goal untouched
    assert not torch.equal(cf[PIXELS][~inside], obs[PIXELS][~inside])  # the cue and trap come from partners
    assert torch.equal(cf[MASK], obs[MASK])


def test_the_counterfactual_term_is_zero_for_a_policy_that_reads_only_the_mask():
    model = agent(AlignedPPO, counterfactual=1.0, **PPO_KW)
    obs = observations()
    gen = torch.Generator().manual_seed(0)
    assert counterfactual_consistency(model.policy, obs, None, gen) > 0
    blind = lambda o: (torch.zeros(len(o[MASK]), 4), o[MASK].float().sum(dim=(1, 2))[:, None])  # noqa: E731
    model.policy.logits_and_value = blind  # a function of the masked region only
    assert counterfactual_consistency(model.policy, obs, None, torch.Generator().manual_seed(0)) == 0


def test_the_counterfactual_term_trains_and_is_logged():
    model = agent(AlignedPPO, counterfactual=1.0, **PPO_KW)
    model.learn(128)
    assert model.attention_history[-1]["counterfactual_loss"] > 0
    assert "train/counterfactual_loss" in model.logger.name_to_value
    with pytest.raises(Exception, match="counterfactual must be >= 0"):
        agent(AlignedPPO, counterfactual=-1.0, **PPO_KW)


def test_a_share_of_the_minibatch_carries_the_counterfactual_term():
    from lookright.rl.alignment import subsample

    obs = observations()
    n = len(obs[MASK])
    k = -(-n // 2)
    part = subsample(obs, 0.5)
    assert all(len(v) == k for v in part.values()) and torch.equal(part[PIXELS], obs[PIXELS][:k])
    assert subsample(obs, 1.0) is obs
    assert len(subsample(obs, 1e-6)[MASK]) == 2  # a partner always exists
    model = agent(AlignedPPO, counterfactual=1.0, counterfactual_share=0.25, **PPO_KW)
    model.learn(128)
    assert model.attention_history[-1]["counterfactual_loss"] > 0
    with pytest.raises(Exception, match="counterfactual_share must be in"):
        agent(AlignedPPO, counterfactual=1.0, counterfactual_share=0.0, **PPO_KW)


def test_the_counterfactuals_in_the_update_pass_give_the_two_pass_term():
    """forward_minibatch appends the counterfactual observations to the minibatch's own pass: the
    minibatch's outputs and the term equal a pass of their own each (float reassociation aside)."""
    from lookright.rl.alignment import subsample

    model = agent(AlignedPPO, counterfactual=1.0, counterfactual_share=0.5, **PPO_KW)
    obs = observations()
    actions = torch.arange(len(obs[MASK])) % 4
    values, log_prob, entropy, cam, logits, pair = model.forward_minibatch(obs, actions, torch.Generator().manual_seed(3))
    alone = model.policy.evaluate_actions_with_attention(obs, actions, with_logits=True)
    for fused, own in zip((values, log_prob, entropy, cam, logits), alone):
        torch.testing.assert_close(fused, own, rtol=1e-5, atol=1e-6)
    k = len(pair[0])
    two_pass = counterfactual_consistency(model.policy, subsample(obs, 0.5), (logits[:k], values[:k]),
                                          torch.Generator().manual_seed(3))
    fused_term = consistency(*pair)
    torch.testing.assert_close(fused_term, two_pass, rtol=1e-5, atol=1e-6)
    weight = model.policy.action_net.weight  # the same gradient: the targets are held fixed in both
    (g_fused,) = torch.autograd.grad(fused_term, weight, retain_graph=True)
    (g_two,) = torch.autograd.grad(two_pass, weight)
    torch.testing.assert_close(g_fused, g_two, rtol=1e-4, atol=1e-6)
    assert g_fused.abs().sum() > 0


def test_the_moving_cue_keeps_its_rule_at_every_step():
    from lookright.rl.env import _adjacent

    for env_id, anchor, other in (("lookright/CueGridMoving-v0", "goal", "trap"),
                                  ("lookright/CueGridMoving-Shifted-v0", "trap", "goal")):
        env = make_env(env_id)
        _, info = env.reset(seed=3)
        cells, done, rng = [info["positions"]["cue"]], False, np.random.default_rng(0)
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(4)))
            done = terminated or truncated
            p = info["positions"]
            assert _adjacent(p["cue"], p[anchor]) and not _adjacent(p["cue"], p[other])
            cells.append(p["cue"])
        assert len(set(cells)) > 1  # it moved
        again = make_env(env_id)
        again.reset(seed=3)
        assert again.unwrapped.positions["cue"] == cells[0]  # a seed still names a level


def test_an_a2c_run_trains_evaluates_and_loads_back(tmp_path):
    from lookright.api import load_run
    from lookright.rl.config import load_rl_config
    from lookright.rl.train import train_agent

    cfg = load_rl_config(None, ["agent.algorithm=a2c", "agent.total_timesteps=256", "agent.n_steps=16", "env.n_envs=2",
                                "agent.channels=[8,16]", "align.loss=camal", "align.counterfactual=0.5",
                                "eval.episodes=3", "eval.masking_episodes=2", "eval.max_states=20", "eval.top_k=[0.1]"])
    metrics = train_agent(cfg, tmp_path / "a2c", progress=False)
    assert metrics["attention_history"][-1]["counterfactual_loss"] > 0
    loaded = load_run(tmp_path / "a2c")
    assert type(loaded.model).__name__ == "AlignedA2C"


def test_every_shipped_rl_config_validates():
    from pathlib import Path

    from lookright.rl.config import load_rl_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs" / "rl").glob("[a-z]*.yaml"))
    assert len(configs) >= 10
    for path in configs:
        cfg = load_rl_config(path)
        assert cfg.name == path.stem
        assert ("a2c" in path.stem) == (cfg.agent.algorithm == "a2c")
        assert ("counterfactual" in path.stem) == (cfg.align.counterfactual > 0)
