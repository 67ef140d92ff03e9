"""Returns, attention alignment and faithfulness of a trained agent.

Every run is evaluated on the same levels: episode ``i`` of a level distribution uses reset seed
``level_seed + i``, so two agents are compared on paired levels. Actions are greedy (argmax).

* **Return** and **success** (the episode ends on the goal) on training levels (``env.id``) and
  shifted test levels (``env.test_id``).
* **Alignment**: on up to ``max_states`` states visited in test-level episodes, the CAM of the
  chosen action, upsampled to pixels by nearest-neighbour (each attention cell is a patch of
  pixels, so the upsampling is exact), against the observation's mask with lookright's
  localisation metrics (energy pointing game, IoU at ``iou_threshold`` of the min-max normalised
  map, ...); ``cue_energy`` is the share of positive attention on the cue's pixels.
* **Faithfulness**, for each fraction ``k``: the top-``k`` most attended pixels (ties by
  row-major position) or ``k`` of the pixels drawn uniformly at random are set to 0 (the
  background). ``prob_drop_*`` is the mean fall of the chosen action's probability on the
  recorded states; ``return_*`` is the mean return of test-level episodes in which every
  observation is masked so before the agent sees it. Faithful attention means
  ``prob_drop_top > prob_drop_random`` and ``return_top < return_random``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lookright.errors import CheckpointError, LookrightError
from lookright.metrics.faithfulness import faithfulness
from lookright.metrics.localisation import LocalisationAccumulator, energy_pointing_game
from lookright.rl.config import RLConfig
from lookright.rl.wrappers import MASK, PIXELS, make_env


def load_agent(run_dir: Path, device: str = "cpu", algorithm: str = "ppo"):
    """The run's ``model.zip`` (``agent.algorithm``'s class); a missing or unreadable file is a CheckpointError."""
    from lookright.rl.train import agent_class

    path = Path(run_dir) / "model.zip"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no model.zip; train it first with `lookright rl train CONFIG`")
    try:
        return agent_class(algorithm).load(path, device=device)
    except LookrightError:
        raise
    except Exception as exc:  # zipfile, pickle and torch errors of a truncated or foreign file
        raise CheckpointError(
            f"{path} is damaged and cannot be loaded ({type(exc).__name__}: {exc}); retrain the run: copy its "
            f"config.yaml out of {run_dir}, delete the folder, then `lookright rl train COPY --run-dir {run_dir}`") from None


def _obs_tensor(policy, pixels: np.ndarray) -> dict:
    """A batch of uint8 pixels ``(B, C, H, W)`` as the policy's dict observation."""
    pixels = torch.as_tensor(pixels, device=policy.device)
    return {PIXELS: pixels, MASK: torch.zeros(pixels.shape[0], *pixels.shape[2:], device=policy.device)}


@torch.no_grad()
def action_maps(policy, pixels: np.ndarray, actions: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cam at pixel resolution (B, H, W), action probabilities (B, A))`` for uint8 pixels."""
    cam, logits = policy.action_cam(_obs_tensor(policy, pixels), None if actions is None else torch.as_tensor(actions))
    scale = pixels.shape[-1] // cam.shape[-1]
    return cam.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2), logits.softmax(dim=1)


def remove_pixels(pixels: np.ndarray, cam: torch.Tensor, k: float, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Set ``k`` of the pixels (top-attended, or random) of each ``(C, H, W)`` image to 0."""
    b, _, h, w = pixels.shape
    n = max(1, int(round(k * h * w)))
    if mode == "top":
        # stable sort on the negated map: ties keep row-major order
        order = torch.sort(-cam.reshape(b, -1).cpu(), dim=1, stable=True).indices[:, :n].numpy()
    else:
        order = np.stack([rng.choice(h * w, n, replace=False) for _ in range(b)])
    out = pixels.copy().reshape(b, pixels.shape[1], h * w)
    out[np.arange(b)[:, None], :, order] = 0
    return out.reshape(pixels.shape)


def run_episodes(model, env_id: str, options: dict, episodes: int, level_seed: int,
                 mask_k: float | None = None, mask_mode: str = "top", max_states: int = 0, seed: int = 0,
                 on_episode: Callable[[], None] | None = None) -> dict:
    """Greedy episodes; optionally mask each observation before the agent acts; record states;
    ``on_episode()`` after each episode (a progress bar)."""
    env = make_env(env_id, **options)
    rng = np.random.default_rng(seed)
    returns, outcomes, states = [], [], {"pixels": [], "mask": [], "cue": []}
    for i in range(episodes):
        obs, info = env.reset(seed=level_seed + i)
        total, done = 0.0, False
        while not done:
            pixels = obs[PIXELS][None]
            if mask_k is not None:
                cam, _ = action_maps(model.policy, pixels)
                pixels = remove_pixels(pixels, cam, mask_k, mask_mode, rng)
            if len(states["pixels"]) < max_states:
                states["pixels"].append(obs[PIXELS])
                states["mask"].append(obs[MASK])
                states["cue"].append(info["object_masks"]["cue"] if "object_masks" in info else np.zeros_like(obs[MASK]))
            action, _ = model.predict({PIXELS: pixels[0], MASK: obs[MASK]}, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        outcomes.append(info.get("outcome"))
        if on_episode is not None:
            on_episode()
    env.close()
    out = {"return": float(np.mean(returns)), "return_std": float(np.std(returns)),
           "success": float(np.mean([o == "goal" for o in outcomes])), "episodes": episodes,
           "returns": returns}
    if max_states:
        out["states"] = {k: np.stack(v) for k, v in states.items() if v}
    return out


def alignment(policy, states: dict, iou_threshold: float, batch: int = 500) -> dict:
    acc = LocalisationAccumulator(options={"iou": {"threshold": iou_threshold}})
    cue_values, value_epg = [], []
    for s in range(0, len(states["pixels"]), batch):
        pixels = states["pixels"][s:s + batch]
        mask = torch.as_tensor(states["mask"][s:s + batch]).float()
        cam, _ = action_maps(policy, pixels)
        acc.update(cam, mask)
        values, defined = energy_pointing_game(cam, torch.as_tensor(states["cue"][s:s + batch]).float())
        cue_values.append(values[defined])
        with torch.no_grad():
            vcam = policy.value_cam(_obs_tensor(policy, pixels))
        scale = pixels.shape[-1] // vcam.shape[-1]
        vcam = vcam.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
        # the value's sign is arbitrary (w_v . f may be negative): align |CAM_v| energy
        v, d = energy_pointing_game(vcam.abs(), mask)
        value_epg.append(v[d])
    out = acc.compute()
    cue = torch.cat(cue_values)
    out["cue_energy"] = {"mean": float(cue.mean()) if len(cue) else None, "images": len(cue),
                         "convention": "sum(relu(A) * M_cue) / sum(relu(A)): attention share on the shortcut cue"}
    v = torch.cat(value_epg)
    out["value_energy_pointing_game"] = {"mean": float(v.mean()) if len(v) else None, "images": len(v),
                                         "convention": "energy pointing game of |CAM of the value head|"}
    return out


def probability_drops(policy, states: dict, fractions: list[float], seed: int = 0, batch: int = 500) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for k in fractions:
        drops = {"top": [], "random": [], "top_changed": [], "random_changed": []}
        for s in range(0, len(states["pixels"]), batch):
            pixels = states["pixels"][s:s + batch]
            cam, probs = action_maps(policy, pixels)
            chosen = probs.argmax(dim=1)
            p = probs.gather(1, chosen[:, None])[:, 0]
            for mode in ("top", "random"):
                _, masked = action_maps(policy, remove_pixels(pixels, cam, k, mode, rng))
                drops[mode].append((p - masked.gather(1, chosen[:, None])[:, 0]).cpu())
                drops[f"{mode}_changed"].append((masked.argmax(dim=1) != chosen).float().cpu())
        mean = {key: float(torch.cat(v).mean()) for key, v in drops.items()}
        out[str(k)] = {"prob_drop_top": mean["top"], "prob_drop_random": mean["random"],
                       "faithfulness": faithfulness(mean["top"], mean["random"]),
                       "action_change_top": mean["top_changed"], "action_change_random": mean["random_changed"]}
    return out


def evaluate_agent(model, cfg: RLConfig, bar=None) -> dict:
    """All evaluation numbers of one agent (see the module docstring); ``bar``: a progress bar
    (:func:`lookright.runs.progress.progress_bar`) that counts the episodes."""
    e = cfg.eval
    step = None
    if bar is not None:
        task = bar.add_task(f"{cfg.name} seed {cfg.seed}: evaluation episodes",
                            total=2 * e.episodes + 2 * len(e.top_k) * e.masking_episodes)
        step = lambda: bar.advance(task)  # noqa: E731
    train_levels = run_episodes(model, cfg.env.id, cfg.env.options, e.episodes, e.level_seed, on_episode=step)
    test_levels = run_episodes(model, cfg.env.test_id, cfg.env.options, e.episodes, e.level_seed, max_states=e.max_states,
                               on_episode=step)
    states = test_levels.pop("states")
    faithful = probability_drops(model.policy, states, e.top_k, seed=cfg.seed)
    for k in e.top_k:
        for mode in ("top", "random"):
            masked = run_episodes(model, cfg.env.test_id, cfg.env.options, e.masking_episodes, e.level_seed,
                                  mask_k=k, mask_mode=mode, seed=cfg.seed, on_episode=step)
            faithful[str(k)][f"return_{mode}"] = masked["return"]
        faithful[str(k)]["return_clean"] = float(np.mean(test_levels["returns"][:e.masking_episodes]))
    return {"train_levels": {k: v for k, v in train_levels.items() if k != "returns"},
            "test_levels": {k: v for k, v in test_levels.items() if k != "returns"},
            "alignment": alignment(model.policy, states, e.iou_threshold),
            "faithfulness": faithful, "states": len(states["pixels"])}


def maps_for_figure(policy, pixels: np.ndarray) -> np.ndarray:
    cam, _ = action_maps(policy, pixels)
    return F.relu(cam).cpu().numpy()
