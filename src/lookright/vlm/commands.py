"""``lookright vlm ...`` and ``lookright teach``."""

from __future__ import annotations


from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookright.errors import LookrightError

vlm_app = typer.Typer(help="Vision-language models: pretrain a small CLIP offline.", no_args_is_help=True)
console = Console()


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(code=2)


@vlm_app.command("pretrain")
def pretrain_cmd(
    out: Annotated[Path, typer.Option(help="output folder (a Hugging Face CLIP folder)")],
    corpus: Annotated[str, typer.Option(help="mnist | shapes | mnist-shapes")] = "mnist-shapes",
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    batch_size: Annotated[int, typer.Option(min=2)] = 256,
    lr: float = 1e-3,
    image_size: Annotated[int, typer.Option(min=8)] = 28,
    n_shapes: Annotated[int, typer.Option(min=0, help="shapes images in the corpus")] = 10000,
    n_mnist: Annotated[int | None, typer.Option(min=1, help="first N MNIST training digits")] = 20000,
    holdout: Annotated[int, typer.Option(min=1, help="last MNIST training digits kept out for zero-shot tests")] = 5000,
    seed: int = 0,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder holding mnist/ (else $LOOKRIGHT_DATA)")] = None,
    embedded: Annotated[bool, typer.Option(help="use the embedded MNIST subset")] = False,
) -> None:
    """Pretrain a small CLIP (ViT + text transformer) on captioned MNIST-train digits and shapes."""
    import torch

    from lookright.vlm.small_clip import pretrain_clip

    if threads:
        torch.set_num_threads(threads)
    try:
        record = pretrain_clip(out, corpus, epochs, batch_size, lr, image_size=image_size, seed=seed, n_mnist=n_mnist,
                               n_shapes=n_shapes, holdout=holdout, data_dir=data_dir, embedded=embedded)
    except LookrightError as exc:
        _fail(exc)
    table = Table(title=f"zero-shot accuracy on held-out images ({record['wall_time_s']:.0f}s of pretraining)")
    table.add_column("task")
    table.add_column("accuracy")
    table.add_column("chance")
    for task, acc in record["zero_shot"].items():
        if task != "chance":
            table.add_row(task, f"{acc:.3f}", f"{record['zero_shot']['chance'][task]:.3f}")
    console.print(table)
    console.print(f"CLIP folder: {out} (load with CLIPModel.from_pretrained or target.vlm.path)")


def teach_cmd(
    config: Annotated[Path, typer.Argument(help="run config with target.teacher: vlm")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="measure pseudo-mask quality against the GT masks")] = False,
    methods: Annotated[str, typer.Option(help="comma-separated methods for --evaluate")] = "gradcam,maskclip,surgery",
    max_images: Annotated[int, typer.Option(min=1, help="test images for --evaluate")] = 2000,
    out: Annotated[Path | None, typer.Option(help="folder for mask_quality.json and the figure")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder holding mnist/ (else $LOOKRIGHT_DATA)")] = None,
) -> None:
    """Precompute a config's pseudo-masks into the cache (or, with --evaluate, measure their quality)."""
    from lookright.train import load_config
    from lookright.vlm.teach import evaluate_teacher, teach

    try:
        cfg = load_config(config, list(overrides or []) + ([f"data.data_dir={data_dir}"] if data_dir else []))
        if evaluate:
            folder = out or Path("report") / "teacher" / cfg.name
            report = evaluate_teacher(cfg, [m.strip() for m in methods.split(",") if m.strip()], max_images, folder)
        else:
            report = teach(cfg)
    except LookrightError as exc:
        _fail(exc)
    if not evaluate:
        for split, r in report.items():
            console.print(f"{split}: {r['images']} images, cache {r['status']}, {r['seconds']:.1f}s, "
                          f"{r['empty']:.1%} empty masks")
        return
    table = Table(title=f"pseudo-mask quality, {report['benchmark']} shifted test, {report['images']} images")
    for col in ("method", "IoU", "energy PG", "on shortcut", "empty", "images/s"):
        table.add_column(col)
    for method, r in report["methods"].items():
        table.add_row(method, f"{r['iou']:.3f}", f"{r['energy_pointing_game']:.3f}", f"{r['shortcut_energy']:.3f}",
                      f"{r['empty']:.3f}", f"{r['images_per_second']:.0f}")
    console.print(table)
    console.print(f"written: {folder / 'mask_quality.json'}, {folder / 'pseudo_masks.png'}")

