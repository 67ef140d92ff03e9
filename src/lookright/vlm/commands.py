"""``lookright vlm ...`` and ``lookright teach``."""

from __future__ import annotations


from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookright.errors import LookrightError

vlm_app = typer.Typer(help="Vision-language models: pretrain a small CLIP offline; text-reliability evaluation "
                        "and LoRA tuning.", no_args_is_help=True)
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



def _reliability_table(results: list[dict]) -> Table:
    table = Table(title="visual reliability (classification | matching protocol)")
    for col in ("config", "seed", "normal acc.", "avg Drop", "TDI", "matching acc.", "matching Drop", "time"):
        table.add_column(col)
    for m in results:
        c, mt = m["results"]["classification"], m["results"]["matching"]
        table.add_row(m["name"], str(m["seed"]), f"{c['normal_accuracy']:.1f}", f"{c['drop_average']:.1f}",
                      f"{c['tdi_average']:.3f}", f"{mt['normal_accuracy']:.1f}", f"{mt['drop_average']:.1f}",
                      f"{m['wall_time_s']:.0f}s")
    return table


def _reliability(config: Path | None, overrides: list[str] | None, seeds: int, first_seed: int | None, jobs: int,
                 frozen_only: bool, run: Path | None = None) -> None:
    """Shared body of ``vlm eval`` and ``vlm tune``. Finished run folders (with ``metrics.json``) are
    read back, never overwritten; ``--run`` results go to ``RUN/eval/seed<k>/``."""
    from lookright.runs.progress import progress_bar
    from lookright.vlm.reliability.config import load_reliability_config
    from lookright.vlm.reliability.run import _run_one, run_reliability, run_seeds

    try:
        cfg = load_reliability_config(config, list(overrides or []))
        if frozen_only and run is None and cfg.tune.method != "frozen":
            raise LookrightError(f"this config tunes the CLIP (tune.method={cfg.tune.method}): run it with "
                                 "`lookright vlm tune`, or evaluate a tuned run with `lookright vlm eval --run DIR`")
        start = cfg.seed if first_seed is None else first_seed
        if run is not None:
            if seeds > 1:
                raise LookrightError("--run evaluates one tuned model: drop --seeds, or pass seed=K for another test split")
            cfg = cfg.model_copy(update={"seed": start})
            results = [run_reliability(cfg, progress=True, run_dir=Path(run) / "eval" / f"seed{start}", from_run=run)]
        elif seeds == 1 and jobs == 1:
            results = [_run_one((cfg.model_copy(update={"seed": start}), True, True))]
        else:
            with progress_bar(True) as bar:
                task = bar.add_task(f"{cfg.name}: {seeds} seeds", total=seeds)
                results = run_seeds(cfg, seeds, start, jobs, on_done=lambda _m: bar.advance(task))
    except LookrightError as exc:
        _fail(exc)
    console.print(_reliability_table(results))
    where = Path(run) / "eval" if run is not None else Path(cfg.out_dir) / cfg.name
    console.print(f"run folders under {where} (finished runs are read back; delete a folder to run it again)")


SEEDS = Annotated[int, typer.Option(min=1, help="seeds FIRST_SEED..FIRST_SEED+N-1")]
FIRST = Annotated[int | None, typer.Option(help="first seed (default: the config's seed)")]
JOBS = Annotated[int, typer.Option(min=1, help="parallel processes (one thread each)")]
CONFIG = Annotated[Path | None, typer.Argument(help="reliability config YAML (configs/vlm/)")]
OVERRIDES = Annotated[list[str] | None, typer.Argument(help="key=value overrides")]


@vlm_app.command("eval")
def eval_cmd(config: CONFIG = None, overrides: OVERRIDES = None, seeds: SEEDS = 1, first_seed: FIRST = None,
             jobs: JOBS = 1,
             run: Annotated[Path | None, typer.Option(help="evaluate the tuned model of this run folder "
                                                            "(results in RUN/eval/seed<k>/)")] = None) -> None:
    """Conflicting-text evaluation of a CLIP as it is (frozen; the classification head is trained on
    consistent captions), or of a tuned run (--run)."""
    _reliability(config, overrides, seeds, first_seed, jobs, frozen_only=True, run=run)


@vlm_app.command("tune")
def tune_cmd(config: CONFIG = None, overrides: OVERRIDES = None, seeds: SEEDS = 1, first_seed: FIRST = None,
             jobs: JOBS = 1) -> None:
    """LoRA (or full) tuning with the configured optimisation suite, then the conflicting-text evaluation."""
    _reliability(config, overrides, seeds, first_seed, jobs, frozen_only=False)


@vlm_app.command("summarize")
def summarize_cmd(root: Annotated[Path, typer.Argument(help="folder holding <name>/seed<k>/ run folders")],
                  out: Annotated[Path | None, typer.Option(help="Markdown table (figures and summary.json beside it)")] = None,
                  baseline: Annotated[str, typer.Option(help="configuration name the others are compared with")] = "baseline",
                  ) -> None:
    """Mean ± std over seeds, relative Drop reduction, t-test and McNemar vs the baseline, Pareto plots."""
    from lookright.vlm.reliability.summary import markdown, summarize

    try:
        table = summarize(root, baseline, out or root / "results.md")
    except LookrightError as exc:
        _fail(exc)
    console.print(markdown(table, baseline))
    console.print(f"written: {out or root / 'results.md'}, index.html and pareto_*.png beside it")
