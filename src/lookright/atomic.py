"""Atomic writes: a unique temporary file in the target's folder, then ``os.replace``.

A reader never sees a half-written file, two writers never share a temporary name, and a
failed write leaves nothing behind. The file gets the permissions the umask gives a new file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path``; the temporary file is removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Strict JSON: NaN and infinities (which JSON has not) are written as null."""
    return write_text_atomic(path, json.dumps(_finite(data), indent=2, allow_nan=False))


def _finite(node: Any) -> Any:
    if isinstance(node, float) and not math.isfinite(node):
        return None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_finite(v) for v in node]
    return node


def save_torch_atomic(obj: Any, path: str | Path) -> Path:
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_file_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` into an open temporary file that then replaces ``path``, for writers that name
    files by themselves (``np.savez`` adds ``.npz`` to a path without it)."""
    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return write_atomic(path, to_file)
