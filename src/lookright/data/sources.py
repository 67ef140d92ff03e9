"""Bring-your-own datasets behind one call: ``data.name`` manifest | folder | npz.

Every file is decoded (or read from the decode cache) and checked before anything trains; the
result is train / val / test :class:`~lookright.data.benchmark.Split` arrays at
``image_size x image_size``.
"""

from __future__ import annotations

from pathlib import Path

from lookright.data.assemble import assemble
from lookright.data.benchmark import Split
from lookright.data.decode import decode_records
from lookright.data.decode_cache import cached_decode
from lookright.data.folder import scan_folder
from lookright.data.manifest import read_manifest
from lookright.data.npz_source import read_npz
from lookright.data.table import Table
from lookright.errors import ConfigError

USER_SOURCES = ("manifest", "folder", "npz")


def load_user_splits(d, seed: int) -> tuple[Split, Split, Split, str]:
    """``d``: the DataConfig. Returns ``(train, val, test, source)``; ``source`` names the data and its classes."""
    if d.name not in USER_SOURCES:
        raise ConfigError(f"data.name {d.name!r} is not a user dataset source ({', '.join(USER_SOURCES)})")
    location = d.root if d.name == "folder" else d.path
    if location is None:
        key = "data.root" if d.name == "folder" else "data.path"
        raise ConfigError(f"data.name {d.name!r} needs {key}")
    location = Path(location).expanduser()
    what = f"{d.name} {location}"
    table = read_table(d.name, location, d.image_size, what)
    train, val, test, classes = assemble(table, d, seed, what)
    return train, val, test, f"{what} ({len(classes)} classes: {', '.join(classes)})"


def read_table(kind: str, location: Path, size: int, what: str) -> Table:
    if kind == "npz":
        return read_npz(location, size)
    records = read_manifest(location) if kind == "manifest" else scan_folder(location)
    arrays = cached_decode(records, size, lambda: decode_records(records, size, what))
    return Table.from_records(records, arrays)
