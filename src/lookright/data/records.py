"""One image of a user dataset before decoding, and the collector of everything wrong with a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lookright.errors import DataError

SPLITS = ("train", "val", "test")
MAX_LISTED = 20


@dataclass(frozen=True)
class Record:
    """An image file, its label, its split (None: carved later) and its optional region files.

    ``box`` is ``(x0, y0, x1, y1)`` in the image's pixels, used when ``mask`` is None; ``where``
    names the record in errors (a manifest row, or the image file).
    """

    image: Path
    label: str
    split: str | None
    mask: Path | None = None
    shortcut: Path | None = None
    box: tuple[float, float, float, float] | None = None
    where: str = ""


class Problems:
    """Collects problems so that one DataError lists them all (the first 20 and the count)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, fix: str = "") -> None:
        if not self.items:
            return
        n = len(self.items)
        lines = [f"  - {m}" for m in self.items[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more ({n} problems in total; the first {MAX_LISTED} are listed)")
        head = f"{self.what}: {n} problem{'s' if n > 1 else ''}"
        raise DataError("\n".join([head, *lines]) + (f"\n{fix}" if fix else ""))
