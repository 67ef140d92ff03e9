"""Atomic writes through an open file, for writers that name files by themselves (``np.savez``
adds ``.npz`` to a path without it; matplotlib picks the format from the extension)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from lookright.runs.atomic import write_atomic


def write_file_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` into a unique temporary file that then replaces ``path``."""
    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return write_atomic(path, to_file)
