"""A decoded user dataset before it is split: arrays, string labels, split names, row names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookright.data.records import Record


@dataclass
class Table:
    """``x`` (N, C, H, W), ``mask`` and ``shortcut`` (N, H, W) uint8; ``labels`` and ``split``
    (``""``: not given) as string arrays; ``where[i]`` names row i in errors."""

    x: np.ndarray
    mask: np.ndarray
    shortcut: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    where: list[str]

    @classmethod
    def from_records(cls, records: list[Record], arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Table:
        return cls(*arrays, *record_columns(records))


def record_columns(records: list[Record]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(labels, split, where)`` of undecoded records, as a Table holds them."""
    return (np.array([r.label for r in records], dtype=str), np.array([r.split or "" for r in records], dtype=str),
            [r.where for r in records])
