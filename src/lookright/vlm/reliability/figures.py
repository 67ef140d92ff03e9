"""Figures of the reliability study: attention maps, t-SNE of the joint space, Pareto frontier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lookright.report.figures import save_figure


def attention_figure(ds, after: dict, before: dict | None, path: Path, title: str, n: int = 6) -> None:
    """Rows: test images; columns: image, mask, then each map after tuning (and before, if given)."""
    columns = [("after", k, v) for k, v in after.items()]
    if before:
        columns = [("before", k, v) for k, v in before.items()] + columns
    n = min(n, len(ds), *(len(maps) for _, _, maps in columns))
    fig = Figure(figsize=(1.6 * (2 + len(columns)), 1.6 * n))
    axes = fig.subplots(n, 2 + len(columns), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(ds.pixels[i].permute(1, 2, 0).numpy())
        axes[i, 1].imshow(ds.data.masks[i], cmap="gray")
        for j, (when, name, maps) in enumerate(columns):
            axes[i, 2 + j].imshow(maps[i].numpy(), cmap="jet")
            if i == 0:
                axes[i, 2 + j].set_title(f"{name} ({when})", fontsize=7)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=7)
            axes[i, 1].set_title("mask", fontsize=7)
        axes[i, 0].set_ylabel(ds.captions[i][:28], fontsize=5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def tsne_figure(before: dict, after: dict, names: list[str], path: Path, seed: int = 0) -> None:
    """t-SNE (scikit-learn) of image (o) and caption (x) embeddings, coloured by shape, before / after."""
    from sklearn.manifold import TSNE

    fig = Figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2)
    for ax, (label, emb) in zip(axes, (("before tuning", before), ("after tuning", after))):
        x = np.concatenate([emb["image"], emb["text"]])
        xy = TSNE(n_components=2, perplexity=min(30, len(x) // 4), init="pca", random_state=seed).fit_transform(x)
        n = len(emb["image"])
        for k, name in enumerate(names):
            sel = emb["shape"] == k
            colour = f"C{k}"
            ax.scatter(xy[:n][sel, 0], xy[:n][sel, 1], s=8, marker="o", color=colour, label=f"{name} image")
            ax.scatter(xy[n:][sel, 0], xy[n:][sel, 1], s=12, marker="x", color=colour, label=f"{name} caption")
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(accuracy, drop)`` no other point beats on both (higher acc, lower drop)."""
    front = []
    for i, (a, d) in enumerate(points):
        dominated = any((a2 >= a and d2 <= d) and (a2 > a or d2 < d) for j, (a2, d2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def pareto_figure(rows: list[dict], path: Path, protocol: str) -> None:
    """Normal accuracy against average Drop (mean ± std over seeds), frontier highlighted."""
    pts = [(r["normal"][0], r["drop"][0]) for r in rows]
    front = set(pareto_front(pts))
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.errorbar(r["drop"][0], r["normal"][0], xerr=r["drop"][1], yerr=r["normal"][1], fmt="o",
                    color="C3" if i in front else "C0", capsize=2)
        ax.annotate(r["name"], (r["drop"][0], r["normal"][0]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    order = sorted(front, key=lambda i: pts[i][1])
    ax.plot([pts[i][1] for i in order], [pts[i][0] for i in order], "--", color="C3", lw=1, label="Pareto frontier")
    ax.set_xlabel("average Drop (points, lower is better)")
    ax.set_ylabel("normal accuracy (%)")
    ax.set_title(f"accuracy vs robustness ({protocol} protocol)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
