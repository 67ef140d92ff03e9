"""Figure of a VLM teacher: image, each method's raw map and pseudo-mask, the ground-truth mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lookright.report.figures import save_figure


def teacher_figure(images: np.ndarray, gt: np.ndarray, examples: dict, path: Path, title: str) -> Path:
    """Rows: images; columns: image, then (raw map, pseudo-mask) per method, then the GT mask."""
    methods = list(examples)
    n = len(images)
    cols = 2 + 2 * len(methods)
    fig = Figure(figsize=(1.3 * cols, 1.35 * n))
    axes = fig.subplots(n, cols, squeeze=False)
    for r in range(n):
        img = images[r].transpose(1, 2, 0)
        panels = [(img if img.shape[-1] == 3 else img[..., 0], "image", None)]
        for m in methods:
            panels.append((examples[m]["raw"][r], f"{m} map", "jet"))
            panels.append((examples[m]["mask"][r], f"{m} mask", "gray"))
        panels.append((gt[r], "GT mask", "gray"))
        for c, (data, label, cmap) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(data, cmap=cmap)
            ax.axis("off")
            if r == 0:
                ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path
