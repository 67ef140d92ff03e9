"""Figures of an RL run: training curves, and episode strips with the attention overlay."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lookright.report.figures import save_figure
from lookright.rl.config import RLConfig
from lookright.rl.evaluate import maps_for_figure
from lookright.rl.wrappers import MASK, PIXELS, make_env


def episode_frames(model, env_id: str, options: dict, level_seed: int, frames: int) -> list[dict]:
    """Greedy frames of one episode: pixels, mask, CAM of the chosen action, action, reward."""
    env = make_env(env_id, **options)
    obs, _ = env.reset(seed=level_seed)
    out, done = [], False
    while not done and len(out) < frames:
        action, _ = model.predict(obs, deterministic=True)
        cam = maps_for_figure(model.policy, obs[PIXELS][None])[0]
        frame = {"pixels": obs[PIXELS], "mask": obs[MASK], "cam": cam, "action": int(action)}
        obs, reward, terminated, truncated, info = env.step(int(action))
        frame["reward"], frame["outcome"] = float(reward), info.get("outcome")
        out.append(frame)
        done = terminated or truncated
    env.close()
    return out


ARROWS = "↑↓←→"


def episode_strip_figure(model, cfg: RLConfig, path: Path, levels: int = 3) -> Path:
    """Rows: ``levels`` training levels then as many shifted test levels; columns: frames.
    Each frame shows the observation, the chosen action's CAM (ReLU, per-frame max) and the
    mask outline."""
    rows = [(cfg.env.id, "train", cfg.eval.level_seed + i) for i in range(levels)]
    rows += [(cfg.env.test_id, "test", cfg.eval.level_seed + i) for i in range(levels)]
    episodes = [(tag, seed, episode_frames(model, env_id, cfg.env.options, seed, cfg.eval.frames))
                for env_id, tag, seed in rows]
    cols = max(len(e) for _, _, e in episodes)
    fig = Figure(figsize=(1.6 * cols, 1.75 * len(rows)))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (tag, seed, frames) in enumerate(episodes):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(frames):
                continue
            f = frames[c]
            ax.imshow(f["pixels"].transpose(1, 2, 0))
            cam = f["cam"] / (f["cam"].max() + 1e-8)
            ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.contour(f["mask"], levels=[0.5], colors="white", linewidths=0.6)
            title = ARROWS[f["action"]]
            if f["outcome"]:
                title += f" {f['outcome']} {f['reward']:+.2f}"
            ax.set_title(title, fontsize=7)
            if c == 0:
                ax.text(-2, 15, f"{tag}\nlevel {seed}", fontsize=6, ha="right", va="center")
    fig.suptitle(f"{cfg.name} seed {cfg.seed}: CAM of the chosen action (white: mask)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def training_curve_figure(metrics: dict, path: Path) -> Path:
    fig = Figure(figsize=(8, 3))
    ax = fig.subplots(1, 2)
    hist = metrics["history"]
    if hist:
        ax[0].plot([h["timesteps"] for h in hist], [h["return"] for h in hist], label="return")
        ax[0].plot([h["timesteps"] for h in hist], [h["success"] for h in hist], label="success")
    ax[0].set_xlabel("timesteps")
    ax[0].set_title("training levels (last 100 episodes)", fontsize=9)
    ax[0].legend(fontsize=7)
    att = [h for h in metrics["attention_history"] if h["attention_loss"] is not None]
    if att:
        ax[1].plot([h["timesteps"] for h in att], [h["attention_loss"] for h in att])
        ax[1].set_title("attention loss", fontsize=9)
    else:
        ax[1].plot([h["timesteps"] for h in metrics["attention_history"]],
                   [h["entropy"] for h in metrics["attention_history"]])
        ax[1].set_title("policy entropy", fontsize=9)
    ax[1].set_xlabel("timesteps")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def save_rl_figures(model, cfg: RLConfig, run_dir: Path, metrics: dict) -> list[Path]:
    """Training curves, episode strips, and one GIF per level distribution (the first evaluation level)."""
    from lookright.rl.video import VIDEOS, episode_gif

    folder = Path(run_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    videos = [episode_gif(model, cfg, env_id, cfg.eval.level_seed, Path(run_dir) / VIDEOS[tag])
              for tag, env_id in (("train", cfg.env.id), ("test", cfg.env.test_id))]
    return [training_curve_figure(metrics, folder / "training.png"),
            episode_strip_figure(model, cfg, folder / "episodes.png"), *videos]

