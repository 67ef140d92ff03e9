"""``lookright vlm ...``: pretrain a small CLIP; reliability runs (``eval``, ``tune``) and their summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookright.errors import LookrightError
from lookright.runs.cli import (Address, Backend, CpusPerRun, FirstSeed, GpusPerRun, Jobs, Overrides, Reference,
                                Seeds, console, emit, fail, plural, show)

vlm_app = typer.Typer(help="Vision-language models: pretrain a small CLIP offline; text-reliability evaluation "
                        "and LoRA tuning.", no_args_is_help=True)


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
    objective: Annotated[str, typer.Option(help="region (CLIP's loss on the class token plus a term on side-by-side "
                                                "composites scored by their own patches) | cls (the class token "
                                                "only) | patch (plus a patch-level multiple-instance term) | "
                                                "patch-bg (plus a figure-ground term); see docs/vlm-teachers.md")
                         ] = "region",
    patch_weight: Annotated[float, typer.Option(min=0, help="weight of the patch or region term")] = 1.0,
    patch_tau: Annotated[float, typer.Option(min=1e-3, help="softmax temperature over patches (objective patch)")] = 0.1,
    shift: Annotated[int, typer.Option(min=0, help="random translations of up to SHIFT pixels")] = 0,
    p_empty: Annotated[float, typer.Option(min=0, max=1, help="chance that a side of a composite is left empty "
                                                              "(objective region)")] = 0.25,
    tint: Annotated[float, typer.Option(min=0, max=1, help="fraction of MNIST digits drawn in a random colour "
                                                       "(independent of the label)")] = 0.0,
    seed: int = 0,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder holding mnist/ (else $LOOKRIGHT_DATA)")] = None,
    embedded: Annotated[bool, typer.Option(help="use the embedded MNIST subset")] = False,
) -> None:
    """Pretrain a small CLIP (ViT + text transformer) on captioned MNIST-train digits and shapes."""
    from lookright.runs.provenance import set_threads
    from lookright.vlm.small_clip import pretrain_clip

    try:
        set_threads(threads, "--threads")
        record = pretrain_clip(out, corpus, epochs, batch_size, lr, image_size=image_size, seed=seed, n_mnist=n_mnist,
                               n_shapes=n_shapes, holdout=holdout, data_dir=data_dir, embedded=embedded,
                               objective=objective, patch_weight=patch_weight, patch_tau=patch_tau, shift=shift,
                               p_empty=p_empty, tint=tint)
    except LookrightError as exc:
        fail(exc)
    table = Table(title=f"zero-shot accuracy on held-out images ({record['wall_time_s']:.0f}s of pretraining)")
    table.add_column("task")
    table.add_column("accuracy")
    table.add_column("chance")
    for task, acc in record["zero_shot"].items():
        if task != "chance":
            table.add_row(task, f"{acc:.3f}", f"{record['zero_shot']['chance'][task]:.3f}")
    show(table)
    console.print(f"CLIP folder: {out} (CLIPModel.from_pretrained, or target.vlm.path / model.path in a config)")


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
                 backend: str, address: str | None, cpus_per_run: float, gpus_per_run: float, frozen_only: bool,
                 run: Path | None = None) -> None:
    """Shared body of ``vlm eval`` and ``vlm tune``: finished runs are read back, never overwritten;
    ``--run`` results go to ``RUN/eval/seed<k>/``."""
    from lookright.vlm.reliability.config import load_reliability_config
    from lookright.vlm.weights import check_clip

    try:
        cfg = load_reliability_config(config, list(overrides or []))
        if frozen_only and run is None and cfg.tune.method != "frozen":
            raise LookrightError(f"this config tunes the CLIP (tune.method={cfg.tune.method}): run it with "
                                 "`lookright vlm tune`, or evaluate a tuned run with `lookright vlm eval --run DIR`")
        if run is not None and seeds > 1:
            raise LookrightError("--run evaluates one tuned model: drop --seeds, or pass seed=K for another test split")
        check_clip(cfg.model, "model")  # before torch and transformers are imported
        from lookright.runs.cli import run_all, succeeded
        from lookright.runs.runner import raise_failures
        from lookright.vlm.reliability.sweep import execute, reliability_specs

        alone = seeds == 1 and backend == "local"  # one run in this process, with its own progress bar
        specs = reliability_specs(cfg, seeds, first_seed, run, progress=alone)
        results = run_all(execute, specs, f"{cfg.name}: {plural(len(specs), 'seed')}", cfg.out_dir, backend, jobs, address,
                          cpus_per_run, gpus_per_run, single=execute)
        done = succeeded(results)
        if done:
            show(_reliability_table(done))
        raise_failures(results)
    except LookrightError as exc:
        fail(exc)
    where = Path(run) / "eval" if run is not None else Path(cfg.out_dir) / cfg.name
    console.print(f"run folders under {where} (finished runs are read back; delete a folder to run it again)")


CONFIG = Annotated[Path | None, typer.Argument(help="reliability config YAML (configs/vlm/)")]


@vlm_app.command("eval")
def eval_cmd(config: CONFIG = None, overrides: Overrides = None, seeds: Seeds = 1, first_seed: FirstSeed = None,
             jobs: Jobs = 1, backend: Backend = "local", address: Address = None, cpus_per_run: CpusPerRun = 1.0,
             gpus_per_run: GpusPerRun = 0.0,
             run: Annotated[Path | None, typer.Option(help="evaluate the tuned model of this finished run folder "
                                                            "(results in RUN/eval/seed<k>/)")] = None) -> None:
    """Conflicting-text evaluation of a CLIP as it is (frozen; the classification head is trained on
    consistent captions), or of a tuned run (--run)."""
    _reliability(config, overrides, seeds, first_seed, jobs, backend, address, cpus_per_run, gpus_per_run,
                 frozen_only=True, run=run)


@vlm_app.command("tune")
def tune_cmd(config: Annotated[Path, typer.Argument(help="reliability config YAML that tunes, e.g. "
                                                         "configs/vlm/shapes-lora.yaml")], overrides: Overrides = None, seeds: Seeds = 1, first_seed: FirstSeed = None,
             jobs: Jobs = 1, backend: Backend = "local", address: Address = None, cpus_per_run: CpusPerRun = 1.0,
             gpus_per_run: GpusPerRun = 0.0) -> None:
    """LoRA (or full) tuning with the configured optimisation suite, then the conflicting-text evaluation."""
    _reliability(config, overrides, seeds, first_seed, jobs, backend, address, cpus_per_run, gpus_per_run,
                 frozen_only=False)


@vlm_app.command("summarize")
def summarize_cmd(root: Annotated[Path, typer.Argument(help="folder searched for finished reliability runs")] = Path("runs"),
                  out: Annotated[Path | None, typer.Option(help="Markdown table (default ROOT/results.md); "
                                                                "summary.json, Pareto plots, index.html beside it")] = None,
                  reference: Reference = "baseline") -> None:
    """Mean ± std over seeds, relative Drop reduction, t-test and McNemar vs the reference, Pareto plots."""
    from lookright.vlm.reliability.page import write_beside
    from lookright.vlm.reliability.summary import load_runs, markdown, summary_table

    out = out or root / "results.md"
    try:
        runs = load_runs(root)
        table = summary_table(runs, reference)
        emit(markdown(table, reference), out)
        write_beside(table, runs, out.parent, reference)
    except LookrightError as exc:
        fail(exc)
    console.print(f"written: {out}, summary.json, index.html and pareto_*.png beside it")
