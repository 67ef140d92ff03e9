"""A pseudo-mask cache: bit-packed, memory-mapped, keyed by what produced it, checked on read.

``MaskCache(root).get_or_build(key_fields, shape, build)``:

* the key is the SHA-256 of the canonical JSON of ``key_fields`` (model identity with a digest
  of its weight files, method and options, prompts, post-processing, dataset identity with a
  digest of its images); the entry lives in ``root/<key[:16]>/``;
* ``masks.bits`` holds ``(N, H, W)`` binary masks packed 8 per byte along W (``np.packbits``),
  read back through ``np.memmap``; ``meta.json`` holds the key fields, the shape and the
  SHA-256 of ``masks.bits``;
* a hit is used only if ``meta.json`` parses, its key fields equal the requested ones (else the
  entry is *stale*), the file has the expected size and its digest matches (else *corrupt*); a
  stale or corrupt entry is rebuilt, never used. Both files are written under a unique temporary
  name and renamed into place (:mod:`lookright.atomic`), the pair under an exclusive lock on
  the entry (``.lock``; readers take a shared one), so an interrupted build leaves no entry and
  processes that build one entry at once never collide: the last writer's entry stands, valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lookright.errors import DataError
from lookright.atomic import write_atomic, write_json_atomic

BITS, META, LOCK = "masks.bits", "meta.json", ".lock"


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return digest_bytes(str((a.dtype.str, a.shape)).encode() + a.tobytes())


def cache_key(fields: dict) -> str:
    return digest_bytes(json.dumps(fields, sort_keys=True, default=str).encode())


class MaskCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.last_status: str | None = None  # "hit", "miss", "stale" or "corrupt"

    def folder(self, fields: dict) -> Path:
        return self.root / cache_key(fields)[:16]

    def _check(self, folder: Path, fields: dict, shape: tuple[int, int, int]) -> str:
        meta_path, bits_path = folder / META, folder / BITS
        if not meta_path.is_file() and not bits_path.is_file():
            return "miss"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return "corrupt"
        if meta.get("fields") != json.loads(json.dumps(fields, sort_keys=True, default=str)) \
                or tuple(meta.get("shape", ())) != tuple(shape):
            return "stale"
        if not bits_path.is_file() or bits_path.stat().st_size != packed_size(shape):
            return "corrupt"
        if digest_file(bits_path) != meta.get("sha256"):
            return "corrupt"
        return "hit"

    def load(self, folder: Path, shape: tuple[int, int, int]) -> np.ndarray:
        """``(N, H, W)`` uint8 masks from a checked entry (unpacked from the memory map)."""
        n, h, w = shape
        packed = np.memmap(folder / BITS, dtype=np.uint8, mode="r", shape=(n, h, (w + 7) // 8))
        return np.unpackbits(packed, axis=-1, count=w)

    def store(self, folder: Path, fields: dict, masks: np.ndarray) -> None:
        if masks.ndim != 3:
            raise DataError(f"masks to cache must be (N, H, W), got {masks.shape}")
        packed = np.packbits(masks > 0, axis=-1)
        meta = {"fields": json.loads(json.dumps(fields, sort_keys=True, default=str)), "shape": list(masks.shape),
                "sha256": digest_bytes(packed.tobytes()), "format": "np.packbits along W, uint8, C order"}
        folder.mkdir(parents=True, exist_ok=True)
        with entry_lock(folder, fcntl.LOCK_EX):
            write_atomic(folder / BITS, packed.tofile)
            write_json_atomic(folder / META, meta)

    def get_or_build(self, fields: dict, shape: tuple[int, int, int], build: Callable[[], np.ndarray]) -> np.ndarray:
        folder = self.folder(fields)
        with entry_lock(folder, fcntl.LOCK_SH):
            self.last_status = self._check(folder, fields, shape)
            if self.last_status == "hit":
                return self.load(folder, shape)
        masks = np.asarray(build())
        if tuple(masks.shape) != tuple(shape):
            raise DataError(f"the mask builder returned {masks.shape}, expected {shape}")
        self.store(folder, fields, masks)
        return (masks > 0).astype(np.uint8)


def packed_size(shape: tuple[int, int, int]) -> int:
    n, h, w = shape
    return n * h * ((w + 7) // 8)


@contextmanager
def entry_lock(folder: Path, mode: int) -> Iterator[None]:
    """``flock`` on the entry's ``.lock`` (none while the entry's folder does not exist)."""
    fd = None
    if folder.is_dir():
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only cache: nobody writes it
            pass
    try:
        if fd is not None:
            fcntl.flock(fd, mode)
        yield
    finally:
        if fd is not None:
            os.close(fd)
