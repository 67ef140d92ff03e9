"""Command-line pieces every pipeline's commands share: the console, errors (exit 2), writing a
table to ``--out``, and the option names (``--seeds``, ``--first-seed``, ``--jobs``, ``--backend``...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement

from lookright.errors import LookrightError
from lookright.atomic import write_text_atomic

console = Console()

Seeds = Annotated[int, typer.Option(min=1, help="number of seeds: FIRST_SEED .. FIRST_SEED+N-1")]
FirstSeed = Annotated[int | None, typer.Option(help="first seed (default: the config's seed)")]
Jobs = Annotated[int, typer.Option(min=1, help="parallel runs on this machine (one thread each)")]
Backend = Annotated[Literal["local", "ray"], typer.Option(help="local processes, or a Ray cluster (Ray Tune)")]
Address = Annotated[str | None, typer.Option(help="Ray cluster address HOST:PORT (default: a local Ray)")]
CpusPerRun = Annotated[float, typer.Option(min=0.1, help="Ray: CPUs per run (also its torch threads)")]
GpusPerRun = Annotated[float, typer.Option(min=0.0, help="Ray: GPUs per run (fractions share a GPU)")]
Reference = Annotated[str | None, typer.Option(help="run name the others are tested against, paired by seed")]
Force = Annotated[bool, typer.Option("--force", help="replace an existing output (nothing is overwritten without it)")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides of the config (dotted keys, "
                                                             "YAML values), e.g. seed=3")]


def show(renderable) -> None:
    """Print a rich table whole: at its natural width where that exceeds a non-terminal console
    (a pipe or a file is 80 columns wide), so that no cell is cut or wrapped."""
    width = console.width
    if not console.is_terminal:
        natural = Measurement.get(console, console.options.update_width(100_000), renderable).maximum
        console.width = max(width, natural)
    try:
        console.print(renderable)
    finally:
        console.width = width


def plural(n: int, word: str) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def fail(exc: Exception) -> None:
    """Print ``error: ...`` and exit with status 2."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def attempt(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a lookright error becomes ``error: ...`` and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except LookrightError as exc:
        fail(exc)


def check_writable(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done."""
    out = Path(out)
    if out.is_dir():
        raise LookrightError(f"--out {out} is a folder; give a file name, e.g. {out / 'results.md'}")
    if (out.parent / "run.json").is_file():
        raise LookrightError(f"--out {out} is inside the run folder {out.parent}; a run's files are written by the "
                             "run alone: choose a file outside it")
    _check_creatable(out, out.parent)


def check_out_folder(out: Path) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LookrightError(f"--out {out} is a file; give a folder for the report")
    _check_creatable(out, out)


def _check_creatable(out: Path, folder: Path) -> None:
    """``folder`` (``out`` or its parent) can be created and written: its nearest existing
    ancestor is a writable folder."""
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise LookrightError(f"--out {out}: cannot write into {folder}; choose a writable location")


def emit(text: str, out: Path | None) -> None:
    """Print a Markdown table and, with ``--out``, write it there too (atomically)."""
    if out:
        check_writable(out)
        try:
            write_text_atomic(out, text)
        except OSError as exc:
            raise LookrightError(f"--out {out}: {exc.strerror}; choose a writable location") from None
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def each_with_progress(title: str, items: list, fn) -> list:
    """``[fn(item, bar) for item in items]`` under one progress bar (``fn`` may add a task of its own to ``bar``)."""
    from lookright.runs.progress import progress_bar

    out = []
    with progress_bar() as bar:
        task = bar.add_task(title, total=len(items))
        for item in items:
            out.append(fn(item, bar))
            bar.advance(task)
    return out


def run_all(execute, specs: list, title: str, storage: str | Path, backend: str = "local", jobs: int = 1,
            address: str | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
            asha=None, single=None) -> list[dict]:
    """Run sweep specs (see :func:`lookright.runs.runner.run_specs`) under one progress bar;
    ``single(spec)`` runs a lone spec on the local backend in this process (with its own bar)."""
    from lookright.runs.progress import progress_bar
    from lookright.runs.runner import run_specs

    if single is not None and len(specs) == 1 and backend == "local" and address is None:
        return [single(specs[0])]

    with progress_bar() as bar:
        task = bar.add_task(title, total=len(specs))
        return run_specs(execute, specs, backend, jobs, lambda _m: bar.advance(task), address, cpus_per_run,
                         gpus_per_run, storage, asha)


def succeeded(results: list[dict]) -> list[dict]:
    """The runs of a sweep that finished (failed ones carry an ``error``, early-stopped ones ``stopped``)."""
    stopped = [r["run_dir"] for r in results if "stopped" in r]
    if stopped:
        console.print(f"{len(stopped)} runs were stopped before finishing (by the scheduler or an interruption): "
                      "they stay interrupted, never summarised; a sweep without --scheduler resumes them",
                      soft_wrap=True)
    return [r for r in results if "error" not in r and "stopped" not in r]
