"""``lookright rl ...``: train, evaluate and tabulate agents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lookright.errors import LookrightError
from lookright.runs.cli import Address, Backend, CpusPerRun, FirstSeed, GpusPerRun, Jobs, Overrides, Reference, Seeds
from lookright.runs.cli import console, each_with_progress, emit, fail, plural, show

rl_app = typer.Typer(help="Attention alignment for RL agents (PPO + CAMAL on CueGrid).", no_args_is_help=True)


def _table(results: list[dict]) -> Table:
    table = Table(title="agents (greedy; test = shifted levels)")
    for col in ("run", "seed", "train return", "test return", "test success", "energy PG", "IoU", "on cue", "wall time"):
        table.add_column(col)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for m in results:
        ev = m["evaluation"]
        al = ev["alignment"]
        table.add_row(m["name"], str(m["seed"]), fmt(ev["train_levels"]["return"]), fmt(ev["test_levels"]["return"]),
                      fmt(ev["test_levels"]["success"]), fmt(al["energy_pointing_game"]["mean"]),
                      fmt(al["iou"]["mean"]), fmt(al["cue_energy"]["mean"]), f"{m['wall_time_s']:.0f}s")
    return table


@rl_app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/rl/cuegrid-camal.yaml")],
    overrides: Overrides = None,
    seeds: Seeds = 1,
    first_seed: FirstSeed = None,
    jobs: Jobs = 1,
    backend: Backend = "local",
    address: Address = None,
    cpus_per_run: CpusPerRun = 1.0,
    gpus_per_run: GpusPerRun = 0.0,
    run_dir: Annotated[Path | None, typer.Option(help="run folder for a single seed (default OUT_DIR/NAME/seedS)")] = None,
) -> None:
    """Train PPO (with the configured attention loss), evaluate it, write run folders.

    One run (the default) is trained into its folder; a finished run is refused, never
    overwritten. With --seeds N (or --backend ray) finished runs are read back, like `lookright sweep`.
    Interrupted or failed runs are trained again."""
    from lookright.rl.config import load_rl_config
    from lookright.rl.sweep import execute, seed_specs
    from lookright.runs.cli import run_all, succeeded
    from lookright.runs.runner import raise_failures

    try:
        cfg = load_rl_config(config, list(overrides or []))
        specs = seed_specs(cfg, seeds, first_seed, run_dir)
        results = run_all(execute, specs, f"{cfg.name}: {plural(len(specs), 'seed')}", cfg.out_dir, backend, jobs, address,
                          cpus_per_run, gpus_per_run, single=lambda s: execute(s, progress=True, read_back=False))
        done = succeeded(results)
        if done:
            show(_table(done))
            console.print(f"run folders: {', '.join(s.run_dir for s in specs)} (model.zip, metrics.json, figures/)",
                          soft_wrap=True)
        raise_failures(results)
    except LookrightError as exc:
        fail(exc)


@rl_app.command("eval")
def eval_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="finished RL run folders")],
    setting: Annotated[list[str] | None, typer.Option("--set", help="eval.KEY=VALUE, e.g. eval.episodes=1000")] = None,
) -> None:
    """Re-evaluate trained agents (returns, alignment, faithfulness, figures) into their metrics.json."""
    from lookright.rl.run_eval import check_settings, evaluate_run

    try:
        check_settings(list(setting or []))
        results = each_with_progress("evaluating agents", run_dirs, lambda folder, bar: evaluate_run(folder, setting, bar))
    except LookrightError as exc:
        fail(exc)
    show(_table(results))


@rl_app.command("summarize")
def summarize_cmd(
    root: Annotated[Path, typer.Argument(help="folder searched for finished RL run folders")] = Path("runs"),
    out: Annotated[Path | None, typer.Option(help="write the Markdown table here (and a .json beside it)")] = None,
    reference: Reference = None,
    k: Annotated[str, typer.Option(help="masked fraction of the faithfulness columns")] = "0.1",
) -> None:
    """Mean ± std over seeds per method, with paired t-tests against the reference (default: *vanilla*)."""
    from lookright.rl.summary import load_rows, summarize_runs, summary_markdown
    from lookright.atomic import write_json_atomic

    try:
        if out and out.suffix == ".json":
            raise LookrightError(f"--out {out} names the Markdown table (the numbers go beside it as .json); "
                                 f"give e.g. {out.with_suffix('.md')}")
        summary = summarize_runs(load_rows(root), reference, k)
        emit(summary_markdown(summary, out), out)
        if out:
            write_json_atomic(out.with_suffix(".json"), summary)
    except LookrightError as exc:
        fail(exc)
