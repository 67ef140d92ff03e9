"""Run figures (matplotlib, Agg): training curves and test images with attention and target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lookright.metrics.localisation import upsample  # noqa: E402


def training_curves(history: list[dict], path: Path, title: str) -> None:
    epochs = [h["epoch"] + 1 for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _display_image(x: torch.Tensor) -> torch.Tensor:
    """Model input in [-1, 1] (C, H, W) -> displayable (H, W, 3) in [0, 1]."""
    img = (x * 0.5 + 0.5).clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img.permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def attention_grid_figure(model, data, extractor, pipeline, path: Path, n: int, title: str) -> None:
    """Rows: image, attention overlay (true class), alignment target (or GT mask)."""
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
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_run_figures(run_dir: Path, model, test_data, extractor, pipeline, metrics: dict, n: int) -> list[Path]:
    figures = Path(run_dir) / "figures"
    figures.mkdir(exist_ok=True)
    curves = figures / "training_curves.png"
    grid = figures / "attention_test.png"
    title = f"{metrics['dataset']} · {metrics['method']} · seed {metrics['seed']}"
    training_curves(metrics["history"], curves, title)
    attention_grid_figure(model, test_data, extractor, pipeline, grid, n, title + " · shifted test images")
    return [curves, grid]
