"""Episode videos: an animated GIF of one greedy episode with the attention overlay (Pillow only).

Each frame is the observation scaled up ``scale`` times (nearest), blended with the chosen
action's CAM (ReLU, divided by the frame's maximum, a blue-to-red ramp at ``alpha``), with the
mask's outline in white and a bar under it naming the action and, at the end, the outcome.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lookright.atomic import write_file_atomic
from lookright.rl.config import RLConfig

ACTION_NAMES = ("up", "down", "left", "right")
#: the episode videos of a run folder, by level distribution
VIDEOS = {"train": "figures/episode_train.gif", "test": "figures/episode_test.gif"}


def heat_colours(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 on a blue (0) to red (1) ramp."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    blue, red = np.array([40, 60, 255], dtype=np.float32), np.array([255, 40, 30], dtype=np.float32)
    return ((1 - v) * blue + v * red).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that touch a pixel outside it (4-neighbourhood, image border outside)."""
    m = np.pad(mask.astype(bool), 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask.astype(bool) & ~inner


def overlay_frame(frame: dict, scale: int = 8, alpha: float = 0.45) -> Image.Image:
    """One episode frame (``pixels (C, H, W)``, ``mask``, ``cam``, ``action``, ``outcome``) as an RGB image."""
    pixels = frame["pixels"].transpose(1, 2, 0).astype(np.float32)
    cam = frame["cam"] / (frame["cam"].max() + 1e-8)
    image = (1 - alpha) * pixels + alpha * heat_colours(cam)
    edge = outline(frame["mask"])
    image[edge] = 255.0
    big = np.kron(image.clip(0, 255).astype(np.uint8), np.ones((scale, scale, 1), dtype=np.uint8))
    canvas = Image.new("RGB", (big.shape[1], big.shape[0] + 14), (0, 0, 0))
    canvas.paste(Image.fromarray(big), (0, 0))
    label = ACTION_NAMES[frame["action"]] + (f"  {frame['outcome']} {frame['reward']:+.2f}" if frame.get("outcome") else "")
    ImageDraw.Draw(canvas).text((3, big.shape[0] + 1), label, fill=(255, 255, 255))
    return canvas


def episode_gif(model, cfg: RLConfig, env_id: str, level_seed: int, path: Path, fps: int = 3) -> Path:
    """Play one greedy episode of ``env_id`` at ``level_seed`` and write it as an animated GIF
    (atomically); the last frame is held for a second."""
    from lookright.rl.figures import episode_frames

    frames = [overlay_frame(f) for f in episode_frames(model, env_id, cfg.env.options, level_seed, 10_000)]
    durations = [1000 // fps] * (len(frames) - 1) + [1000]
    return write_file_atomic(path, lambda out: frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:],
                                                               duration=durations, loop=0))
