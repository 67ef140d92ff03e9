"""Cost of the attention term in a PPO update, as ratios to vanilla PPO measured in the same run.

One rollout of CueGrid (``--envs`` x ``--steps`` transitions) is collected once; then
``AlignedPPO.train()`` (all epochs and minibatches over that rollout) is timed for vanilla PPO,
PPO + CAMAL, PPO + KL and PPO + the counterfactual consistency term (weight 1) on the whole minibatch, on an eighth of it
(``align.counterfactual_share: 0.125``) and on 3/32 of it (24 of 256 states), from the same
starting weights. Each variant is timed in rounds of its own against vanilla (every round runs
both once, in a random order; medians; its ratio is to the vanilla median of its own rounds), so
a variant's cost is never measured next to a third one's memory traffic (in one rotation of all
five variants, the 512-state whole-minibatch variant slowed the 288-state one by several points).
Rollout collection (the environment and the acting forward pass) is timed too, for scale.

    python benchmarks/rl_update_cost.py [--rounds 11] [--out benchmarks/rl_results.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch
from stable_baselines3.common.env_util import make_vec_env

from lookright.rl.ppo import AlignedPPO
from lookright.rl.wrappers import make_env

#: variant -> (attention loss, counterfactual weight, share of each minibatch it is computed on)
VARIANTS = {"vanilla": (None, 0.0, 1.0), "camal": ("camal", 0.0, 1.0), "kl": ("kl", 0.0, 1.0),
            "counterfactual": (None, 1.0, 1.0), "counterfactual-share-0.125": (None, 1.0, 0.125),
            "counterfactual-share-0.09375": (None, 1.0, 0.09375)}


def build(loss, counterfactual: float, share: float, envs: int, steps: int, device: str) -> AlignedPPO:
    env = make_vec_env(lambda: make_env("lookright/CueGrid-v0"), n_envs=envs, seed=0)
    return AlignedPPO("GapCnnPolicy", env, attention_loss=loss, counterfactual=counterfactual,
                      counterfactual_share=share, n_steps=steps,
                      batch_size=256, n_epochs=4, seed=0, device=device, policy_kwargs=dict(patch=5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/rl_results.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = {name: build(*variant, args.envs, args.steps, args.device) for name, variant in VARIANTS.items()}
    reference = models["vanilla"]
    total, callback = reference._setup_learn(args.envs * args.steps, callback=None)
    callback.on_training_start(locals(), globals())
    start = time.perf_counter()
    reference.collect_rollouts(reference.env, callback, reference.rollout_buffer, n_rollout_steps=args.steps)
    rollout_s = time.perf_counter() - start
    weights = copy.deepcopy(reference.policy.state_dict())
    for model in models.values():
        model._setup_learn(args.envs * args.steps, callback=None)
        model.rollout_buffer = reference.rollout_buffer

    def timed(name: str) -> float:
        models[name].policy.load_state_dict(weights)
        start = time.perf_counter()
        models[name].train()
        return time.perf_counter() - start

    # each variant alternates with vanilla in rounds of its own (random order within a round): the
    # ratio compares two updates that run side by side, with no third variant's memory in between
    median, ratio = {}, {"vanilla": 1.0}
    for name in models:
        if name == "vanilla":
            continue
        times: dict[str, list[float]] = {"vanilla": [], name: []}
        for _ in range(args.rounds):
            for key in random.sample(list(times), 2):
                times[key].append(timed(key))
        median[name] = statistics.median(times[name])
        median.setdefault("vanilla", statistics.median(times["vanilla"]))
        ratio[name] = median[name] / statistics.median(times["vanilla"])
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s), {args.device}",
        "rollout": f"{args.envs} envs x {args.steps} steps, 4 epochs of minibatch 256",
        "rounds": args.rounds, "collect_rollout_s": rollout_s,
        "update_s": median, "update_ratio_to_vanilla": ratio,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
