"""Run figures: training curves and test images with attention and target.

Every figure here and in the other ``figures`` modules is a :class:`matplotlib.figure.Figure` built
with the object-oriented API and written by :func:`save_figure`: no ``pyplot``, no backend switch,
so importing lookright never changes the caller's matplotlib backend (a notebook's, say).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lookright.metrics.localisation import upsample
from lookright.atomic import write_atomic


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically: a unique temporary file in the same folder, then
    ``os.replace``; nothing is left behind on error. ``Figure.savefig`` picks the PNG canvas itself."""
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def training_curves(history: list[dict], path: Path, title: str) -> None:
    epochs = [h["epoch"] + 1 for h in history]
    fig = Figure(figsize=(10, 3.6))
    ax_acc, ax_loss = fig.subplots(1, 2)
    ax_acc.plot(epochs, [h["val_acc"] for h in history], label="validation (in-distribution)")
    ax_acc.plot(epochs, [h["test_acc"] for h in history], label="test (shortcut shifted)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    ax_loss.plot(epochs, [h["train_ce"] for h in history], label="train CE")
    if any(h.get("train_align") is not None for h in history):
        nan = float("nan")
        ax_loss.plot(epochs, [nan if h["train_align"] is None else h["train_align"] for h in history],
                     label="train alignment")
        ax_loss.plot(epochs, [h["val_align"] for h in history], label="val alignment")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="losses", yscale="log")
    ax_loss.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _display_image(x: torch.Tensor) -> torch.Tensor:
    """Model input in [-1, 1] (C, H, W) -> displayable (H, W, 3) in [0, 1]."""
    img = (x * 0.5 + 0.5).clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).cpu().numpy()


def figure_pixels(fig: Figure) -> np.ndarray:
    """The figure rendered to an (H, W, 3) uint8 array (for loggers), without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@torch.no_grad()
def attention_grid_figure(model, data, extractor, pipeline, path: Path | None, n: int, title: str) -> Figure:
    """Rows: image, attention overlay (true class), alignment target (or GT mask); saved at
    ``path`` when given, and returned."""
    n = min(n, len(data.y))
    was_training = model.training
    model.eval()
    x, y = data.x[:n], data.y[:n]
    maps = extractor(model, x, y).float()
    pred = model(x).argmax(1)
    model.train(was_training)
    size = tuple(x.shape[-2:])
    heat = torch.relu(upsample(maps, size))
    heat = heat / heat.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    target = data.target[:n] if data.target is not None else data.mask[:n].float()
    fig = Figure(figsize=(1.6 * n, 5.2))
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        img = _display_image(x[i])
        axes[0, i].imshow(img)
        axes[0, i].set_title(f"y={int(y[i])} ŷ={int(pred[i])}", fontsize=8)
        axes[1, i].imshow(img.mean(-1), cmap="gray")
        axes[1, i].imshow(heat[i].cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[2, i].imshow(target[i].cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel(f"{extractor.name}")
    axes[2, 0].set_ylabel("target" if data.target is not None else "GT mask")
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_run_figures(run_dir: Path, model, test_data, extractor, pipeline, metrics: dict, n: int) -> list[Path]:
    figures = Path(run_dir) / "figures"
    figures.mkdir(exist_ok=True)
    curves = figures / "training_curves.png"
    grid = figures / "attention_test.png"
    title = f"{metrics['dataset']} · {metrics['method']} · seed {metrics['seed']}"
    training_curves(metrics["history"], curves, title)
    attention_grid_figure(model, test_data, extractor, pipeline, grid, n, title + " · shifted test images")
    return [curves, grid]


def _mean_curve(runs: list[dict], *keys) -> np.ndarray:
    curves = []
    for r in runs:
        node = r["evaluation"]["faithfulness"]
        for k in keys:
            node = node[k]
        curves.append(node)
    return np.mean(np.asarray(curves, dtype=float), axis=0)


def faithfulness_figure(methods, path: Path, title: str) -> None:
    """Mean over seeds: deletion and insertion curves, and the probability drop after removing the
    top-k% attended pixels (solid) against k% random pixels (dashed)."""
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    for i, method in enumerate(methods):
        colour = f"C{i}"
        for ax, mode in zip(axes[:2], ("deletion", "insertion"), strict=True):
            curve = _mean_curve(method.runs, mode, "curve")
            ax.plot(np.linspace(0, 1, len(curve)), curve, color=colour, label=method.name)
        fractions = 100 * np.asarray(method.runs[0]["evaluation"]["faithfulness"]["removal"]["fractions"])
        axes[2].plot(fractions, _mean_curve(method.runs, "removal", "prob_drop_top"), "o-", color=colour,
                     label=f"{method.name} (top)")
        axes[2].plot(fractions, _mean_curve(method.runs, "removal", "prob_drop_random"), "x--", color=colour,
                     label=f"{method.name} (random)")
    axes[0].set(title="deletion (lower AUC = more faithful)", xlabel="fraction of pixels removed",
                ylabel="p(predicted class)")
    axes[1].set(title="insertion (higher AUC = more faithful)", xlabel="fraction of pixels inserted",
                ylabel="p(predicted class)")
    axes[2].set(title="removal: top-k% attended vs random", xlabel="k (%)", ylabel="drop of p(predicted class)")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def accuracy_figure(methods, path: Path, title: str) -> None:
    """Per method: validation (in-distribution) and shifted-test accuracy, mean over seeds with
    the standard deviation as error bars and each seed as a dot. The gap between the two bars
    is the shortcut's price."""
    fig = Figure(figsize=(max(4.5, 1.6 * len(methods) + 2), 3.6))
    ax = fig.subplots()
    x = np.arange(len(methods))
    for offset, key, label, colour in ((-0.2, "val_acc", "validation (in-distribution)", "#9ecae1"),
                                       (0.2, "shifted_test_acc", "shifted test (shortcut flipped)", "#d6604d")):
        values = [np.asarray([r[key] for r in m.runs], dtype=float) for m in methods]
        means = [v.mean() for v in values]
        stds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.bar(x + offset, means, 0.38, yerr=stds, capsize=4, color=colour, label=label)
        for i, v in enumerate(values):
            ax.plot(np.full(len(v), x[i] + offset), v, "k.", markersize=4)
        for i, m in enumerate(means):
            ax.annotate(f"{m:.1f}", (x[i] + offset, m), textcoords="offset points", xytext=(0, 3), ha="center",
                        fontsize=8)
    ax.set_xticks(x, [m.name for m in methods], fontsize=8)
    ax.set(ylabel="accuracy (%)", ylim=(0, 105), title=title)
    ax.axhline(10, color="grey", linestyle=":", linewidth=0.8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def _display_raw(x: np.ndarray) -> np.ndarray:
    """A benchmark image (C, H, W) uint8 -> (H, W, 3) floats in [0, 1]."""
    img = x.astype(float) / 255.0
    img = np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img
    return img.transpose(1, 2, 0)


def method_grid_figure(named_examples: list[tuple[str, Path | dict]], path: Path, n: int, title: str) -> None:
    """Rows: the shifted-test images, their ground-truth mask, then each method's true-class
    attention over the image with the mask's outline. Each (method, examples) pair gives a run's
    ``eval/examples*.npz`` or its arrays (``x`` uint8, ``y``, ``mask``, ``maps``; with ``pred``, each
    prediction is shown, green when right)."""
    examples = []
    for _, source in named_examples:
        if isinstance(source, dict):
            examples.append(source)
            continue
        with np.load(source) as z:
            examples.append({k: z[k] for k in z.files})
    n = min([n] + [len(e["maps"]) for e in examples])
    if n == 0:
        return
    base = examples[0]
    rows = 2 + len(named_examples)
    fig = Figure(figsize=(1.5 * n + 1.2, 1.5 * rows + 0.6))
    axes = fig.subplots(rows, n, squeeze=False)
    for i in range(n):
        img = _display_raw(base["x"][i])
        axes[0, i].imshow(img)
        axes[0, i].set_title(f"y={int(base['y'][i])}", fontsize=8)
        axes[1, i].imshow(base["mask"][i], cmap="gray", vmin=0, vmax=1)
        for r, ex in enumerate(examples, start=2):
            heat = torch.relu(upsample(torch.from_numpy(ex["maps"][i : i + 1]).float(), img.shape[:2]))[0]
            heat = heat / heat.max().clamp_min(1e-12)
            axes[r, i].imshow(img.mean(-1), cmap="gray")
            axes[r, i].imshow(heat.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[r, i].contour(base["mask"][i], levels=[0.5], colors="white", linewidths=0.6)
            if "pred" in ex:
                right = int(ex["pred"][i]) == int(base["y"][i])
                axes[r, i].set_title(f"ŷ={int(ex['pred'][i])}", fontsize=8, color="green" if right else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("GT mask", fontsize=8)
    for r, (name, _) in enumerate(named_examples, start=2):
        axes[r, 0].set_ylabel(name, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
