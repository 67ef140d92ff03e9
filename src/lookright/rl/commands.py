"""``lookright rl ...``: train, evaluate and tabulate agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lookright.errors import LookrightError

rl_app = typer.Typer(help="Attention alignment for RL agents (PPO + CAMAL on CueGrid).", no_args_is_help=True)
console = Console()


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(code=2)


def _table(results: list[dict]) -> Table:
    table = Table(title="agents (greedy; test = shifted levels)")
    for col in ("run", "seed", "train return", "test return", "test success", "energy PG", "IoU", "on cue", "train time"):
        table.add_column(col)
    for m in results:
        ev = m["evaluation"]
        al = ev["alignment"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(m["name"], str(m["seed"]), fmt(ev["train_levels"]["return"]), fmt(ev["test_levels"]["return"]),
                      fmt(ev["test_levels"]["success"]), fmt(al["energy_pointing_game"]["mean"]),
                      fmt(al["iou"]["mean"]), fmt(al["cue_energy"]["mean"]), f"{m['train_time_s']:.0f}s")
    return table


@rl_app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/rl/cuegrid-camal.yaml")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. agent.total_timesteps=1e5")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="train seeds FIRST_SEED..FIRST_SEED+N-1")] = 1,
    first_seed: Annotated[int | None, typer.Option(help="first seed (default: the config's seed)")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="parallel processes (one thread each)")] = 1,
    run_dir: Annotated[Path | None, typer.Option(help="run folder for a single seed (default OUT_DIR/NAME/seedS)")] = None,
) -> None:
    """Train PPO (with the configured attention loss), evaluate it, write run folders."""
    from lookright.rl.config import load_rl_config
    from lookright.rl.summary import run_seeds
    from lookright.rl.train import train_agent
    from lookright.runs.progress import progress_bar

    try:
        cfg = load_rl_config(config, list(overrides or []))
        start = cfg.seed if first_seed is None else first_seed
        if seeds == 1 and jobs == 1:
            cfg = cfg.model_copy(update={"seed": start})
            folder = run_dir or Path(cfg.out_dir) / cfg.name / f"seed{start}"
            results = [train_agent(cfg, folder)]
        else:
            if run_dir:
                raise LookrightError("--run-dir names one run; with --seeds > 1 runs go to OUT_DIR/NAME/seedS")
            with progress_bar() as bar:
                task = bar.add_task(f"{cfg.name}: {seeds} seeds", total=seeds)
                results = run_seeds(cfg, seeds, start, jobs, on_done=lambda _m: bar.advance(task))
    except LookrightError as exc:
        _fail(exc)
    console.print(_table(results))
    console.print(f"run folders under {Path(cfg.out_dir) / cfg.name} (model.zip, metrics.json, figures/)")


@rl_app.command("eval")
def eval_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders (config.yaml + model.zip)")],
    setting: Annotated[list[str] | None, typer.Option("--set", help="eval.KEY=VALUE, e.g. eval.episodes=1000")] = None,
) -> None:
    """Re-evaluate trained agents (returns, alignment, faithfulness, figures) into their metrics.json."""
    from lookright.rl.config import load_rl_config
    from lookright.rl.evaluate import evaluate_agent, load_agent
    from lookright.rl.figures import save_rl_figures
    from lookright.rl.train import write_json
    from lookright.runs.progress import progress_bar

    bad = [s for s in setting or [] if not s.startswith("eval.")]
    if bad:
        _fail(LookrightError(f"--set takes eval.KEY=VALUE settings only, got {bad}"))
    results = []
    try:
        with progress_bar() as bar:
            task = bar.add_task("evaluating agents", total=len(run_dirs))
            for folder in run_dirs:
                if not (folder / "config.yaml").is_file():
                    raise LookrightError(f"{folder} is not an RL run folder (no config.yaml)")
                cfg = load_rl_config(folder / "config.yaml", list(setting or []))
                model = load_agent(folder, cfg.agent.device)
                path = folder / "metrics.json"
                metrics = json.loads(path.read_text()) if path.is_file() else {"name": cfg.name, "seed": cfg.seed}
                metrics["evaluation"] = evaluate_agent(model, cfg)
                metrics.setdefault("history", [])
                metrics.setdefault("attention_history", model.attention_history)
                metrics.setdefault("train_time_s", float("nan"))
                save_rl_figures(model, cfg, folder, metrics)
                write_json(path, metrics)
                results.append(metrics)
                bar.advance(task)
    except LookrightError as exc:
        _fail(exc)
    console.print(_table(results))


@rl_app.command("summarize")
def summarize_cmd(
    root: Annotated[Path, typer.Argument(help="folder searched for RL run folders")] = Path("runs/rl"),
    out: Annotated[Path | None, typer.Option(help="write the Markdown table here (and a .json beside it)")] = None,
    reference: Annotated[str | None, typer.Option(help="method the paired tests compare against (default: *vanilla*)")] = None,
    k: Annotated[str, typer.Option(help="masked fraction of the faithfulness columns")] = "0.1",
) -> None:
    """Mean ± std over seeds per method, with paired t-tests against the reference."""
    from lookright.rl.summary import load_runs, markdown, summarize_runs

    try:
        summary = summarize_runs(load_runs(root), reference, k)
    except LookrightError as exc:
        _fail(exc)
    text = markdown(summary)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    console.print(text)
