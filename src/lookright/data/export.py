"""Write a generated benchmark to one ``.npz`` so anyone can inspect or reuse it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookright.data.benchmark import create_benchmark
from lookright.errors import DataError
from lookright.atomic import write_file_atomic


def export_benchmark(name: str, out: str | Path, data_dir=None, seed: int = 0, embedded: bool = False,
                     force: bool = False) -> Path:
    """Keys: x_train, y_train, mask_train, shortcut_train, x_test, y_test, mask_test, shortcut_test.

    Images are uint8 channel-first in MNIST's order; masks uint8 {0, 1} (N, 28, 28).
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; give a file name, e.g. {out / (name + '.npz')}")
    if out.exists() and not force:
        raise DataError(f"{out} exists; nothing is overwritten: choose another --out or pass --force")
    bench = create_benchmark(name, data_dir=data_dir, seed=seed, embedded=embedded)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {out}: cannot create {out.parent} ({exc.strerror})") from None
    arrays = {}
    for split_name, split in (("train", bench.train), ("test", bench.test)):
        arrays.update({
            f"x_{split_name}": split.x, f"y_{split_name}": split.y.astype(np.uint8),
            f"mask_{split_name}": split.mask, f"shortcut_{split_name}": split.shortcut,
        })
    try:
        write_file_atomic(out, lambda f: np.savez_compressed(f, **arrays))
    except OSError as exc:
        raise DataError(f"--out {out}: cannot write ({exc.strerror}); choose a writable location") from None
    return out

