"""Rich progress bars with ETA; a silent stand-in when disabled (tests, CI logs)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Silent:
    console = Console(quiet=True)

    def add_task(self, *_args, **_kwargs) -> int:
        return 0

    def advance(self, *_args, **_kwargs) -> None:
        pass


@contextmanager
def progress_bar(enabled: bool = True):
    if not enabled:
        yield _Silent()
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    ) as bar:
        yield bar
