"""Write a generated benchmark to one ``.npz`` so anyone can inspect or reuse it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lookright.data.benchmark import create_benchmark


def export_benchmark(name: str, out: str | Path, data_dir=None, seed: int = 0, embedded: bool = False) -> Path:
    """Keys: x_train, y_train, mask_train, shortcut_train, x_test, y_test, mask_test, shortcut_test.

    Images are uint8 channel-first in MNIST's order; masks uint8 {0, 1} (N, 28, 28).
    """
    bench = create_benchmark(name, data_dir=data_dir, seed=seed, embedded=embedded)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    arrays = {}
    for split_name, split in (("train", bench.train), ("test", bench.test)):
        arrays.update({
            f"x_{split_name}": split.x, f"y_{split_name}": split.y.astype(np.uint8),
            f"mask_{split_name}": split.mask, f"shortcut_{split_name}": split.shortcut,
        })
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out
