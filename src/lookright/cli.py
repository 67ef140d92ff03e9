"""The command-line face of lookright."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookright.errors import LookrightError
from lookright.runs.cli import Address, Backend, CpusPerRun, FirstSeed, Force, GpusPerRun, Jobs, Overrides, Seeds
from lookright.runs.cli import attempt, console, each_with_progress, emit, fail, plural, show

app = typer.Typer(help="Make vision models look at the right thing, and measure whether they do.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Benchmarks and user datasets: export, example.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"lookright {version('lookright')}", highlight=False)
        except PackageNotFoundError:
            console.print("lookright (not installed: run `make install`)", highlight=False)
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="print the version and exit")] = False) -> None:
    """Make vision models look at the right thing, and measure whether they do."""


def _rl_app() -> typer.Typer:
    from lookright.rl.commands import rl_app

    return rl_app


app.add_typer(_rl_app(), name="rl")


def _vlm_commands():
    from lookright.vlm import commands

    return commands


app.add_typer(_vlm_commands().vlm_app, name="vlm")


def _teach_command():
    from lookright.train.commands import teach_cmd

    return teach_cmd


app.command("teach")(_teach_command())

DataDir = Annotated[str | None, typer.Option("--data-dir", help="folder holding mnist/ (else $LOOKRIGHT_DATA)")]
ShowTest = Annotated[bool, typer.Option("--show-test", help="print shifted-test accuracy in the per-epoch log "
                                                            "(log.show_test=true): a peek at the test shift")]


def _extra(overrides: list[str] | None, data_dir: str | None, show_test: bool = False) -> list[str]:
    """The command line's overrides plus those its options stand for."""
    return [*(overrides or []), *([f"data.data_dir={data_dir}"] if data_dir else []),
            *(["log.show_test=true"] if show_test else [])]


def _run_table(results: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("run", "seed", "shifted test acc", "val acc", "counterfactual val", "CAM on digit",
                "CAM on shortcut", "gradient on shortcut", "time"):
        table.add_column(col, no_wrap=col == "run")
    for m in results:
        mass, grad = m["attention_mass"], m.get("input_gradient_mass") or {}
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        cf = m.get("val_counterfactual_acc")
        table.add_row(m["name"], str(m["seed"]), f"{m['shifted_test_acc']:.2f}%", f"{m['val_acc']:.2f}%",
                      "n/a" if cf is None else f"{cf:.2f}%", fmt(mass["digit"]["mean"]), fmt(mass["shortcut"]["mean"]),
                      fmt((grad.get("shortcut") or {}).get("mean")), f"{m['wall_time_s']:.0f}s")
    return table


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML config")],
    overrides: Overrides = None,
    run_dir: Annotated[Path | None, typer.Option(help="run folder (default OUT_DIR/NAME/seedS)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted or failed run in RUN_DIR "
                                                           "(same config) from its last checkpoint")] = False,
    data_dir: DataDir = None,
    show_test: ShowTest = False,
) -> None:
    """Train one run from a config."""
    from lookright.train.config import load_config

    try:
        # validated before the trainer (and torch) is imported: a typo fails at once
        cfg = load_config(config, _extra(overrides, data_dir, show_test))
        _check_teacher(cfg)
        from lookright.train.trainer import train as train_run

        folder = run_dir or Path(cfg.out_dir) / cfg.name / f"seed{cfg.seed}"
        metrics = train_run(cfg, folder, resume=resume)
    except LookrightError as exc:
        fail(exc)
    show(_run_table([metrics], cfg.name))
    console.print(f"run folder: {folder} (metrics.json, figures/)")


def _check_teacher(cfg) -> None:
    """A VLM teacher's CLIP is there, before any data is loaded."""
    if cfg.target.teacher == "vlm":
        from lookright.vlm.weights import check_clip

        check_clip(cfg.target.vlm, "target.vlm")


@app.command("eval")
def eval_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders (each with config.yaml and checkpoints/)")],
    extractor: Annotated[str | None, typer.Option(help="attention extractor for the metrics")] = None,
    max_images: Annotated[int | None, typer.Option(min=1, help="shifted-test images for the attention metrics")] = None,
    setting: Annotated[list[str] | None, typer.Option("--set", help="eval.KEY=VALUE, e.g. eval.substrate=blur")] = None,
    data_dir: DataDir = None,
) -> None:
    """Compute every metric for trained runs and write them into their metrics.json."""
    from lookright.train.run_eval import evaluate_run

    overrides = list(setting or []) + ([f"eval.max_images={max_images}"] if max_images else [])
    bad = [o for o in overrides if not o.startswith("eval.")]
    if bad:
        fail(LookrightError(f"--set takes eval.KEY=VALUE settings only, got {bad}"))
    overrides += [f"data.data_dir={data_dir}"] if data_dir else []
    try:
        results = each_with_progress("evaluating runs", run_dirs,
                                     lambda run_dir, _bar: evaluate_run(run_dir, extractor, overrides))
    except LookrightError as exc:
        fail(exc)
    show(_eval_table(results, run_dirs))


def _eval_table(results: list[dict], run_dirs: list[Path]) -> Table:
    table = Table(title="evaluation (shifted test split)")
    cols = ("run", "extractor", "shifted acc", "energy PG", "IoU", "ROC-AUC", "deletion AUC", "insertion AUC",
            "on shortcut")
    for col in cols:
        table.add_column(col)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for folder, m in zip(run_dirs, results):
        ev = list(m["evaluations"].values())[-1]  # the one just computed
        loc, faith = ev["localisation"], ev["faithfulness"]
        table.add_row(str(folder), ev["extractor"], f"{m['shifted_test_acc']:.2f}%", fmt(loc["energy_pointing_game"]["mean"]),
                      fmt(loc["iou"]["mean"]), fmt(loc["roc_auc"]["mean"]), fmt(faith["deletion"]["auc"]),
                      fmt(faith["insertion"]["auc"]), fmt(ev["shortcut_mass"]["mean"]))
    return table


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="evaluated run folders, or folders holding them")],
    out: Annotated[Path, typer.Option(help="report folder: index.html, report.md, compare.json, figures/")] = Path("report"),
    reference: Annotated[str | None, typer.Option(help="method (config name) the others are tested against")] = None,
    examples: Annotated[int, typer.Option(min=1, help="test images in the attention grid")] = 8,
    removal_k: Annotated[float, typer.Option(help="fraction for the top-k removal columns")] = 0.1,
    extractor: Annotated[str | None, typer.Option(help="compare the attention metrics of this extractor (runs "
                                                       "evaluated with `lookright eval --extractor NAME`); default: "
                                                       "each run's own, which must agree")] = None,
) -> None:
    """Compare evaluated runs of one dataset: an HTML page and a Markdown twin."""
    from lookright.report.page import write_report
    from lookright.runs.cli import check_out_folder

    try:
        check_out_folder(out)
        result = write_report(run_dirs, out, reference, examples, removal_k, extractor)
    except LookrightError as exc:
        fail(exc)
    names = ", ".join(f"{m['name']} ({plural(len(m['seeds']), 'seed')})" for m in result["methods"])
    console.print(f"{result['dataset']}: {names}; attention from {result['extractor']}", highlight=False)
    console.print(f"report: {out / 'index.html'} (Markdown: {out / 'report.md'}, numbers: {out / 'compare.json'})")


@app.command()
def sweep(
    config: Path,
    seeds: Seeds = 5,
    first_seed: FirstSeed = None,
    grid: Annotated[list[str] | None, typer.Option(help="key=v1,v2 (repeatable); one run folder per combination")] = None,
    jobs: Jobs = 1,
    backend: Backend = "local",
    address: Address = None,
    cpus_per_run: CpusPerRun = 1.0,
    gpus_per_run: GpusPerRun = 0.0,
    samples: Annotated[int | None, typer.Option(min=1, help="random search: this many grid points, drawn "
                                                            "without replacement (seeded by --search-seed)")] = None,
    search_seed: Annotated[int, typer.Option(help="seed of the random search")] = 0,
    scheduler: Annotated[str, typer.Option(help="fifo, or asha: Ray Tune stops weak runs early (--backend ray)")] = "fifo",
    metric: Annotated[str, typer.Option(help="asha: per-epoch metric (val_acc, val_loss, val_cf_acc, ...)")] = "val_acc",
    mode: Annotated[str, typer.Option(help="asha: max or min")] = "max",
    grace_period: Annotated[int, typer.Option(min=1, help="asha: epochs before a run can be stopped")] = 1,
    ensemble: Annotated[int, typer.Option(min=1, help="train up to this many new runs that differ only in seed, "
                                                      "lambda, attn_epochs, optimiser, scheduler or selection as "
                                                      "one batched model (docs/speed.md)")] = 1,
    data_dir: DataDir = None,
    show_test: ShowTest = False,
    overrides: Overrides = None,
) -> None:
    """Run a config over seeds (and a grid): finished runs are read back, interrupted ones resumed;
    print mean ± std over seeds."""
    from lookright.runs.cli import run_all, succeeded
    from lookright.runs.runner import raise_failures
    from lookright.train.config import load_config
    from lookright.train.sweep import ensemble_jobs, execute, job_results, sweep_specs

    try:
        cfg = load_config(config, _extra(overrides, data_dir, show_test))
        _check_teacher(cfg)
        from lookright.report.summary import summary_table

        specs = sweep_specs(cfg, seeds, grid or [], first_seed, samples, search_seed)
        asha = early_stopping(scheduler, metric, mode, grace_period, cfg.train.epochs)
        if asha is not None and ensemble > 1:
            raise LookrightError("--scheduler asha stops runs one by one; it cannot be combined with --ensemble")
        specs = ensemble_jobs(specs, ensemble)
        results = job_results(specs, run_all(execute, specs, f"sweep {config.name}", cfg.out_dir, backend, jobs,
                                             address, cpus_per_run, gpus_per_run, asha))
        done = succeeded(results)
        if done:
            console.print(summary_table(done), soft_wrap=True, markup=False)
        raise_failures(results)
    except LookrightError as exc:
        fail(exc)


def early_stopping(scheduler: str, metric: str, mode: str, grace_period: int, epochs: int):
    if scheduler == "fifo":
        return None
    if scheduler != "asha":
        raise LookrightError(f"--scheduler {scheduler!r}: choose fifo or asha")
    if mode not in ("max", "min"):
        raise LookrightError(f"--mode {mode!r}: choose max or min")
    from lookright.runs.ray_backend import Asha

    return Asha(metric=metric, mode=mode, max_t=epochs, grace_period=grace_period)


@app.command()
def summarize(
    root: Annotated[Path, typer.Argument(help="folder searched for run folders")] = Path("runs"),
    out: Annotated[Path | None, typer.Option(help="write the Markdown table here")] = None,
    paired: Annotated[str | None, typer.Option(
        help="also compare every run name with its dataset's run whose name ends with this suffix "
             "(e.g. -vanilla), paired by seed")] = None,
    heatmap: Annotated[str | None, typer.Option(
        help="two config keys X,Y (e.g. loss.lambda0,train.attn_epochs): heat maps of shifted-test and validation "
             "accuracy over that grid; without it, drawn for runs that differ in exactly two keys")] = None,
) -> None:
    """Summarise every finished run under ROOT: mean ± std over seeds per (dataset, model, run name),
    and heat maps of any two-setting grid (PNG next to --out, else in ROOT)."""
    from lookright.report.heatmap import heatmap_section, parse_axes
    from lookright.report.summary import load_rows, paired_table, summary_table
    from lookright.runs.cli import check_writable

    try:
        axes = parse_axes(heatmap) if heatmap else None
        if out:
            check_writable(out)
        rows = load_rows(root)
        text = summary_table(rows)
        if paired:
            text += "\n" + paired_table(rows, paired)
        maps, paths = heatmap_section(rows, out.parent if out else root, axes)
        emit(text + maps, out)
        for path in paths:
            console.print(f"heat map: {path}", highlight=False)
    except LookrightError as exc:
        fail(exc)


@app.command()
def status(
    root: Annotated[Path, typer.Argument(help="folder searched for run folders")] = Path("runs"),
    all_runs: Annotated[bool, typer.Option("--all", help="list finished runs too")] = False,
) -> None:
    """Count the run folders under ROOT by state; list the running, interrupted and failed ones."""
    from lookright.runs.status import STATES, scan, status_text

    try:
        rows = scan(root)
    except LookrightError as exc:
        fail(exc)
    shown = (*STATES, "damaged") if all_runs else ("running", "interrupted", "failed", "damaged")
    console.print(status_text(rows, shown), soft_wrap=True, highlight=False, markup=False)


@app.command("selection-study")
def selection_study_cmd(
    root: Annotated[Path, typer.Argument(help="folder searched for finished run folders")] = Path("runs"),
    out: Annotated[Path | None, typer.Option(help="write the Markdown table here")] = None,
) -> None:
    """Spearman of counterfactual validation accuracy (no test shift) against shifted-test accuracy."""
    from lookright.report.selection import selection_study, selection_table
    from lookright.report.summary import load_rows

    try:
        rows = [r for r in load_rows(root) if r.get("val_counterfactual_acc") is not None]
        if not rows:
            raise LookrightError(f"no finished run with a counterfactual validation score under {root}; "
                                 "train runs with this version of lookright first")
        emit(selection_table(selection_study(rows)), out)
    except LookrightError as exc:
        fail(exc)


@app.command()
def demo(
    data_dir: DataDir = None,
    out_dir: Annotated[str, typer.Option(help="where run folders go")] = "runs",
    epochs: Annotated[int, typer.Option(min=2, help="epochs per run")] = 8,
    seed: int = 0,
    jobs: Annotated[int, typer.Option(min=1, help="runs trained side by side (one process and thread each)")] = 2,
) -> None:
    """A shortcut vanilla takes and an aligner that removes it: vanilla vs mask-guided counterfactual
    augmentation on frame-colour-mnist (embedded MNIST subset unless --data-dir), about a minute."""
    from lookright.demo import TITLE, attention_figure, demo_configs, verdict
    from lookright.runs.cli import run_all
    from lookright.runs.runner import raise_failures
    from lookright.train.sweep import checked, execute, spec_for

    runs = demo_configs(out_dir, data_dir, epochs, seed)
    try:
        specs = checked([spec_for(cfg, folder) for cfg, folder in runs])
        results = run_all(execute, specs, "demo: vanilla and counterfactual", out_dir, jobs=jobs)
        raise_failures(results)  # finished runs are read back
        figure = attention_figure(runs, Path(out_dir) / "demo" / "attention.png")
    except LookrightError as exc:
        fail(exc)
    show(_run_table(results, TITLE))
    console.print(verdict(results), highlight=False, soft_wrap=True)
    console.print(f"attention overlays: {figure}", highlight=False, soft_wrap=True)
    console.print(f"run folders: {', '.join(str(folder) for _, folder in runs)} (metrics.json, figures/)",
                  highlight=False, soft_wrap=True)


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished supervised run folder")],
    format: Annotated[str, typer.Option("--format", help="safetensors | torchscript | onnx")] = "safetensors",
    out: Annotated[Path | None, typer.Option(help="output file (default RUN_DIR/export/model.EXT)")] = None,
    force: Force = False,
) -> None:
    """Export a run's selected model (safetensors + lookright.json, TorchScript or ONNX)."""
    from lookright.train.export import export_run

    path = attempt(export_run, run_dir, format, out, force)
    console.print(f"wrote {path} (model description: {path.with_name(path.stem + '.lookright.json')})")


@data_app.command("export")
def data_export(
    name: Annotated[str, typer.Argument(help="colormnist | decoymnist-cdep | decoymnist-rrr")],
    out: Annotated[Path, typer.Option(help="output .npz (an existing file is kept unless --force)")],
    data_dir: DataDir = None,
    seed: int = 0,
    embedded: Annotated[bool, typer.Option(help="use the embedded subset instead of full MNIST")] = False,
    force: Force = False,
) -> None:
    """Write a benchmark as generated (uint8, channel-first, MNIST order) to an .npz."""
    from lookright.data.export import export_benchmark

    path = attempt(export_benchmark, name, out, data_dir=data_dir, seed=seed, embedded=embedded, force=force)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@data_app.command("example")
def data_example(
    out: Annotated[Path, typer.Option(help="output folder (images/, masks/, shortcuts/, manifest.csv)")],
    n: Annotated[int, typer.Option(help="number of images")] = 600,
    size: Annotated[int, typer.Option(help="image side in pixels")] = 96,
    seed: int = 0,
    force: Force = False,
) -> None:
    """Write a shapes dataset with masks and a corner-patch shortcut in the manifest format."""
    from lookright.data.example import write_example

    path = attempt(write_example, out, n=n, size=size, seed=seed, force=force)
    console.print(f"wrote {path} ({n} images, {size} px); train on it with data.name=manifest data.path={path}")


@data_app.command("list")
def data_list() -> None:
    """List the benchmarks, each with a one-line description."""
    from lookright.data import GENERATORS

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("description")
    for name, text in GENERATORS.describe().items():
        table.add_row(name, text)
    show(table)
    console.print("your own images: data.name=manifest | folder | npz (docs/user-data.md)", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
