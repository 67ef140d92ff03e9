"""The manifest CSV: one row per image, ``image,label[,split][,mask][,shortcut][,box]``.

Paths are relative to the CSV's folder (absolute paths are kept). An empty ``split`` column or
none at all leaves the split to be carved; an empty ``mask`` cell falls back to ``box``, else to
an all-zero mask; ``box`` is ``x0 y0 x1 y1`` in the image's pixels.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lookright.data.records import SPLITS, Problems, Record
from lookright.errors import DataError

REQUIRED = ("image", "label")
OPTIONAL = ("split", "mask", "shortcut", "box")


def read_manifest(path: str | Path) -> list[Record]:
    """Parse and check every row; one DataError lists all bad rows."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path: no manifest at {path}; give a CSV with columns image,label[,split,mask,shortcut,box]")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"manifest {path}: cannot read it as CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(f"manifest {path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'}); "
                        f"the first line must name the columns image,label and optionally {','.join(OPTIONAL)}")
    problems = Problems(f"manifest {path}")
    records = [_record(row, i, path, problems) for i, row in enumerate(rows, start=2)]
    if not records:
        problems.add("no rows: add one row per image below the header")
    problems.raise_if_any("fix the rows named above (row numbers count the header as row 1)")
    return records


def _record(row: dict, line: int, csv_path: Path, problems: Problems) -> Record:
    where = f"{csv_path.name} row {line}"
    cell = {k: (v or "").strip() for k, v in row.items() if k is not None}
    base = csv_path.parent
    resolve = lambda v: (base / v) if v else None  # noqa: E731  (absolute v stays absolute)
    if not cell.get("image"):
        problems.add(f"{where}: empty image cell")
    if not cell.get("label"):
        problems.add(f"{where}: empty label cell")
    split = cell.get("split") or None
    if split is not None and split not in SPLITS:
        problems.add(f"{where}: split {split!r} is not one of train, val, test")
    return Record(image=base / cell.get("image", ""), label=cell.get("label", ""), split=split,
                  mask=resolve(cell.get("mask")), shortcut=resolve(cell.get("shortcut")),
                  box=parse_box(cell.get("box", ""), where, problems), where=where)


def parse_box(text: str, where: str, problems: Problems) -> tuple[float, float, float, float] | None:
    """``"x0 y0 x1 y1"`` (spaces or commas) -> floats with x0 < x1 and y0 < y1; None when empty."""
    if not text:
        return None
    try:
        box = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        problems.add(f"{where}: box {text!r} is not 'x0 y0 x1 y1' with x0 < x1 and y0 < y1 (pixels of the image)")
        return None
    return box
