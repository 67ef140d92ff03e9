"""MNIST from the four standard IDX ``.gz`` files, verified by checksum.

Where the files come from, in order:

1. ``data_dir`` (the ``--data-dir`` option), a folder holding ``mnist/`` with the four files
   (the folder itself may also be the ``mnist/`` folder);
2. the environment variable ``LOOKRIGHT_DATA``, same layout;
3. the cache folder ``$LOOKRIGHT_CACHE`` or ``~/.cache/lookright`` (holding ``mnist/``);
4. a download from the standard mirrors into the cache.

Each file is checked against the published MD5 of its *uncompressed* content, so a
re-compressed copy passes and a corrupt or truncated one fails with a message naming it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookright.errors import DataError

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# MD5 of the uncompressed IDX files, as published with MNIST.
MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
ENV_DATA = "LOOKRIGHT_DATA"
ENV_CACHE = "LOOKRIGHT_CACHE"


@dataclass(frozen=True)
class MNIST:
    """MNIST as uint8 arrays: images (N, 28, 28), labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "lookright"))


def _mnist_folder(root: Path) -> Path:
    """``root/mnist`` if it exists, else ``root`` itself (the user may point at either)."""
    return root / "mnist" if (root / "mnist").is_dir() else root


def read_idx(path: Path, verify: bool = True) -> np.ndarray:
    """Read one gzip-compressed IDX file into a uint8 array, checking its MD5 and header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MNIST file not found: {path}")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"MNIST file {path} is corrupt or truncated ({exc}); delete it and download it again "
            f"or point --data-dir / {ENV_DATA} at a good copy"
        ) from exc
    expected = MD5.get(path.name)
    if verify and expected is not None:
        got = hashlib.md5(raw).hexdigest()
        if got != expected:
            raise DataError(
                f"MNIST file {path} fails its checksum (MD5 of content {got}, expected {expected}); "
                "the file is corrupt or not the standard MNIST file: replace it with a good copy"
            )
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(raw) != header + count:
        raise DataError(f"{path} is truncated: header announces {dims}, file has {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES.values())


def download(dest: Path, mirrors: tuple[str, ...] = MIRRORS) -> Path:
    """Download the four files into ``dest`` (atomic per file); raise a DataError offline."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        target = dest / name
        if target.is_file():
            continue
        errors = []
        for mirror in mirrors:
            tmp = target.with_suffix(".part")
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as resp, open(tmp, "wb") as fh:
                    fh.write(resp.read())
                read_idx(tmp.rename(target))
                break
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                errors.append(f"{mirror}: {exc}")
                for leftover in (tmp, target):
                    leftover.unlink(missing_ok=True)
        else:
            raise DataError(
                f"could not download {name} ({'; '.join(errors)}). Without network access, put the four "
                f"MNIST .gz files in a folder DIR/mnist/ and pass --data-dir DIR or set {ENV_DATA}=DIR"
            )
    return dest


def locate(data_dir: str | Path | None = None, allow_download: bool = True) -> Path:
    """Find the folder holding the four MNIST files, following the order in the module docstring."""
    if data_dir is not None or os.environ.get(ENV_DATA):
        root = Path(data_dir if data_dir is not None else os.environ[ENV_DATA]).expanduser()
        origin = "--data-dir" if data_dir is not None else ENV_DATA
        folder = _mnist_folder(root)
        missing = [n for n in FILES.values() if not (folder / n).is_file()]
        if missing:
            raise DataError(
                f"{origin} points at {root}, but {folder} lacks {', '.join(missing)}; "
                "the folder must hold mnist/ with the four standard MNIST .gz files"
            )
        return folder
    cached = cache_dir() / "mnist"
    if _complete(cached):
        return cached
    if not allow_download:
        raise DataError(
            f"MNIST not found: pass --data-dir DIR or set {ENV_DATA}=DIR (DIR/mnist/ holds the four .gz files)"
        )
    return download(cached)


def load_mnist(data_dir: str | Path | None = None, allow_download: bool = True) -> MNIST:
    """Load and verify full MNIST (60,000 train, 10,000 test)."""
    folder = locate(data_dir, allow_download)
    arrays = {key: read_idx(folder / name) for key, name in FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataError(f"MNIST {split} images and labels differ in length in {folder}")
    return MNIST(**arrays, source=str(folder))


EMBEDDED = Path(__file__).parent / "embedded" / "mnist_subset.npz"


def load_embedded() -> MNIST:
    """The small MNIST subset shipped with the package (first digits of each split, MNIST order)."""
    if not EMBEDDED.is_file():
        raise DataError(f"embedded MNIST subset missing at {EMBEDDED}; rebuild it with `make subset`")
    with np.load(EMBEDDED) as z:
        return MNIST(
            train_images=z["train_images"],
            train_labels=z["train_labels"],
            test_images=z["test_images"],
            test_labels=z["test_labels"],
            source="embedded subset",
        )
