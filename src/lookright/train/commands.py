"""``lookright teach``: fill a supervised config's pseudo-mask cache, or measure mask quality."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookright.errors import LookrightError
from lookright.runs.cli import Overrides, console, fail, show


def teach_cmd(
    config: Annotated[Path, typer.Argument(help="run config with target.teacher: vlm")],
    overrides: Overrides = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="measure pseudo-mask quality against the GT masks")] = False,
    methods: Annotated[str, typer.Option(help="comma-separated methods for --evaluate")] = "gradcam,maskclip,surgery",
    max_images: Annotated[int, typer.Option(min=1, help="test images for --evaluate")] = 2000,
    out: Annotated[Path | None, typer.Option(help="folder for mask_quality.json and the figure")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder holding mnist/ (else $LOOKRIGHT_DATA)")] = None,
) -> None:
    """Precompute a config's pseudo-masks into the cache (or, with --evaluate, measure their quality)."""
    from lookright.train.config import load_config
    from lookright.vlm.weights import check_clip

    try:
        cfg = load_config(config, list(overrides or []) + ([f"data.data_dir={data_dir}"] if data_dir else []))
        if cfg.target.vlm is not None:
            check_clip(cfg.target.vlm, "target.vlm")
        from lookright.train.teach import evaluate_teacher, teach

        if evaluate:
            folder = out or Path("report") / "teacher" / cfg.name
            report = evaluate_teacher(cfg, [m.strip() for m in methods.split(",") if m.strip()], max_images, folder)
        else:
            report = teach(cfg)
    except LookrightError as exc:
        fail(exc)
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
    show(table)
    console.print(f"written: {folder / 'mask_quality.json'}, {folder / 'pseudo_masks.png'}")
