"""A cache of decoded datasets: one ``.npz`` per (file list, sizes, mtimes, image size).

Lives in ``$LOOKRIGHT_CACHE/datasets`` (default ``~/.cache/lookright/datasets``), written
atomically. A file whose key does not match, or that cannot be read, is decoded again and
replaced; any edit, touch, addition or removal of an image or mask file gives a new key.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lookright.atomic import write_file_atomic
from lookright.data.mnist import cache_dir
from lookright.data.records import Record

VERSION = 1
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def dataset_key(records: list[Record], size: int) -> str | None:
    """Digest of every file's path, size and mtime plus boxes and ``size``; None if a file is missing."""
    items = []
    try:
        for r in records:
            files = [p for p in (r.image, r.mask, r.shortcut) if p is not None]
            stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
            items.append([stats, r.mask is None, r.shortcut is None, r.box])
    except OSError:
        return None
    text = json.dumps({"version": VERSION, "size": size, "files": items})
    return hashlib.sha256(text.encode()).hexdigest()


def cached_decode(records: list[Record], size: int, decode: Callable[[], Arrays]) -> Arrays:
    """``decode()``'s arrays, read from the cache when its key matches, else decoded and stored."""
    key = dataset_key(records, size)
    if key is None:
        return decode()  # a file is missing: decode reports it
    path = cache_dir() / "datasets" / f"{key[:32]}.npz"
    hit = _read(path, key, len(records))
    if hit is not None:
        return hit
    arrays = decode()
    x, mask, shortcut = arrays
    try:
        write_file_atomic(path, lambda f: np.savez(f, key=np.array(key), x=x, mask=mask, shortcut=shortcut))
    except OSError:
        pass  # a read-only cache only costs time
    return arrays


def _read(path: Path, key: str, n: int) -> Arrays | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if str(z["key"]) != key or len(z["x"]) != n:
                return None
            arrays = z["x"], z["mask"], z["shortcut"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if arrays[1].shape != (n, *arrays[0].shape[-2:]) or arrays[2].shape != arrays[1].shape:
        return None
    return arrays
