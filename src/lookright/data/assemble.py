"""From a decoded table to train / val / test Splits: carving, subsampling, class indices, checks.

Without test rows, a seeded, per-class ``test_fraction`` of train becomes test; ``max_train`` /
``max_test`` keep a seeded random subset (in file order); without val rows, a seeded per-class
``val_fraction`` of (what is left of) train becomes val. Labels become their index in
``classes`` (default: the train labels, sorted; numerically when all are integers).
"""

from __future__ import annotations

import numpy as np

from lookright.data.benchmark import Split
from lookright.data.records import Problems
from lookright.data.table import Table
from lookright.errors import DataError

STREAMS = {"test": 4, "max_train": 5, "max_test": 6, "val": 3}


def assemble(t: Table, d, seed: int, what: str) -> tuple[Split, Split, Split, list[str]]:
    """``d``: the DataConfig (val_fraction, test_fraction, max_train, max_test, classes)."""
    idx, y, classes = split_rows(t.labels, t.split, t.where, d, seed, what)
    split = lambda rows: Split(t.x[rows], y[rows], t.mask[rows], t.shortcut[rows])  # noqa: E731
    return split(idx["train"]), split(idx["val"]), split(idx["test"]), classes


def split_rows(labels: np.ndarray, split: np.ndarray, where: list[str], d, seed: int,
               what: str) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """The rows of each split (``{"train", "val", "test"} -> indices``), every row's class index
    and the class order, from the string labels and split names alone (nothing decoded)."""
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    idx["train"] = np.flatnonzero((split == "train") | (split == ""))
    if not len(idx["test"]):
        idx["train"], idx["test"] = carve(idx["train"], labels, d.test_fraction, seed, "test")
    if d.max_train:
        idx["train"] = subsample(idx["train"], d.max_train, seed, "max_train")
    if d.max_test:
        idx["test"] = subsample(idx["test"], d.max_test, seed, "max_test")
    if not len(idx["val"]):
        idx["train"], idx["val"] = carve(idx["train"], labels, d.val_fraction, seed, "val")
    for name, rows in idx.items():
        if not len(rows):
            raise DataError(f"{what}: the {name} split is empty; add {name} rows, or rows without a split to carve "
                            f"it from (carved: test_fraction {d.test_fraction}, val_fraction {d.val_fraction})")
    classes = class_order(d.classes, labels[idx["train"]])
    check_labels(labels, where, idx, classes, what)
    lookup = {c: i for i, c in enumerate(classes)}
    return idx, np.array([lookup[label] for label in labels], np.int64), classes


def carve(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded ``fraction`` of ``rows``, rounded, at least one image of each class with
    two or more, and never a class's last image."""
    rng = np.random.default_rng([seed, STREAMS[stream]])
    taken = []
    for c in np.unique(labels[rows]):
        members = rows[labels[rows] == c]
        k = min(max(int(round(len(members) * fraction)), 1), len(members) - 1)
        taken.append(rng.permutation(members)[:k])
    out = np.sort(np.concatenate(taken)) if taken else rows[:0]
    return np.setdiff1d(rows, out), out


def subsample(rows: np.ndarray, n: int, seed: int, stream: str) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng([seed, STREAMS[stream]]).permutation(rows)[:n])


def class_order(classes: list | None, train_labels: np.ndarray) -> list[str]:
    if classes is not None:
        return [str(c) for c in classes]
    found = sorted(set(train_labels.tolist()))
    if all(c.lstrip("-").isdigit() for c in found):
        found.sort(key=int)
    return found


def check_labels(labels: np.ndarray, where: list[str], idx: dict, classes: list[str], what: str) -> None:
    problems = Problems(what)
    known = set(classes)
    for name, rows in idx.items():
        for i, label in zip(rows, labels[rows].tolist()):
            if label not in known:
                problems.add(f"{where[i]}: label {label!r} is not in data.classes {classes}")
    in_train = set(labels[idx["train"]].tolist())  # tolist: str, not np.str_, in messages
    for name in ("val", "test"):
        for c in sorted(set(labels[idx[name]].tolist()) - in_train):
            first = where[idx[name][labels[idx[name]] == c][0]]
            problems.add(f"class {c!r} appears in {name} (e.g. {first}) but not in train: the model cannot learn it; "
                         f"add train images of {c!r} or drop it")
    problems.raise_if_any()
