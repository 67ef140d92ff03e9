"""Bring-your-own datasets behind one call: ``data.name`` manifest | folder | npz.

Every file is decoded (or read from the decode cache) and checked before anything trains; the
result is train / val / test :class:`~lookright.data.benchmark.Split` arrays at
``image_size x image_size``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lookright.data.assemble import assemble, split_rows
from lookright.data.benchmark import DataSource, Split
from lookright.data.decode import GREY_MODES, decode_records
from lookright.data.decode_cache import cached_decode
from lookright.data.folder import scan_folder
from lookright.data.manifest import read_manifest
from lookright.data.npz_source import read_npz
from lookright.data.records import Problems
from lookright.data.stream import StreamSplit, decoded_bytes
from lookright.data.table import Table, record_columns
from lookright.errors import ConfigError

USER_SOURCES = ("manifest", "folder", "npz")


def load_user_splits(d, seed: int, stream: bool | str = False) -> tuple[Split | StreamSplit, Split | StreamSplit,
                                                                       Split | StreamSplit, DataSource]:
    """``d``: the DataConfig. Returns ``(train, val, test, source)``; ``source`` names the data and its classes
    (:class:`~lookright.data.benchmark.DataSource`).

    ``stream`` (True, False or ``"auto"``, see :func:`streams`): train is a :class:`StreamSplit`
    whose images are decoded per batch; val and test stream too with ``True``, or with ``"auto"``
    when their decoded images exceed the budget, and are decoded and held in memory otherwise.
    """
    if d.name not in USER_SOURCES:
        raise ConfigError(f"data.name {d.name!r} is not a user dataset source ({', '.join(USER_SOURCES)})")
    location = d.root if d.name == "folder" else d.path
    if location is None:
        key = "data.root" if d.name == "folder" else "data.path"
        raise ConfigError(f"data.name {d.name!r} needs {key}")
    location = Path(location).expanduser()
    what = f"{d.name} {location}"
    if d.name == "npz":
        if stream is True:
            raise ConfigError("data.stream: true applies to manifest and folder datasets; an .npz is read whole "
                              "(use data.stream: auto or false)")
        train, val, test, classes = assemble(read_npz(location, d.image_size), d, seed, what)
    else:
        records = read_manifest(location) if d.name == "manifest" else scan_folder(location)
        idx, y, classes = split_rows(*record_columns(records), d, seed, what)
        if streams(stream, d, len(idx["train"])):
            held = stream is True or decoded_bytes(len(idx["val"]) + len(idx["test"]), d.image_size) > budget_bytes(d)
            train, val, test = stream_splits(records, idx, y, d.image_size, what, held)
        else:
            arrays = cached_decode(records, d.image_size, lambda: decode_records(records, d.image_size, what))
            train, val, test, classes = assemble(Table.from_records(records, arrays), d, seed, what)
    return train, val, test, DataSource(f"{what} ({len(classes)} classes: {', '.join(map(str, classes))})", classes)


def streams(stream: bool | str, d, n_train: int) -> bool:
    """True or False as given; ``"auto"``: stream when ``data.augment`` is set or the decoded train
    split (counted at 3 channels) would take more than ``data.memory_budget_mb``."""
    if stream != "auto":
        return bool(stream)
    return bool(d.augment) or decoded_bytes(n_train, d.image_size) > budget_bytes(d)


def budget_bytes(d) -> float:
    return d.memory_budget_mb * 2**20


def stream_splits(records, idx: dict, y: np.ndarray, size: int, what: str,
                  stream_held: bool = False) -> tuple[StreamSplit, Split | StreamSplit, Split | StreamSplit]:
    """Train undecoded; val and test undecoded too (``stream_held``) or decoded (one cached decode of
    their files), at the channel count of all three."""
    if stream_held:
        channels = image_channels([records[i] for part in idx.values() for i in part], what)
        return tuple(StreamSplit([records[i] for i in idx[k]], y[idx[k]], size, channels, what)
                     for k in ("train", "val", "test"))
    held = [records[i] for i in np.concatenate([idx["val"], idx["test"]])]
    x, mask, shortcut = cached_decode(held, size, lambda: decode_records(held, size, what))
    train = [records[i] for i in idx["train"]]
    channels = max(x.shape[1], image_channels(train, what))
    x = np.repeat(x, channels // x.shape[1], axis=1)  # grey val/test beside colour train: 3 equal channels
    k = len(idx["val"])
    val = Split(x[:k], y[idx["val"]], mask[:k], shortcut[:k])
    test = Split(x[k:], y[idx["test"]], mask[k:], shortcut[k:])
    return StreamSplit(train, y[idx["train"]], size, channels, what), val, test


def image_channels(records, what: str) -> int:
    """3 if any image is colour, else 1, read from the files' headers; one DataError lists every
    missing or unreadable image and missing mask file."""
    problems, colour = Problems(what), False
    for r in records:
        try:
            with Image.open(r.image) as im:
                colour = colour or im.mode not in GREY_MODES
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            problems.add(f"unreadable image {r.image} ({r.where}): {exc}")
        for kind, path in (("mask", r.mask), ("shortcut", r.shortcut)):
            if path is not None and not path.is_file():
                problems.add(f"missing {kind} {path} ({r.where})")
    problems.raise_if_any("fix or remove the files named above; nothing was trained")
    return 3 if colour else 1


def decoded_split(split: StreamSplit) -> Split:
    """A streamed split decoded into memory (one cached decode of its files)."""
    x, mask, shortcut = cached_decode(split.records, split.size,
                                      lambda: decode_records(split.records, split.size, split.what))
    return Split(np.repeat(x, split.channels // x.shape[1], axis=1), split.y, mask, shortcut)
