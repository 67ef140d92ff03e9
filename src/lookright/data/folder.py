"""Image folders: ``ROOT/SPLIT/CLASS/IMAGE``, masks at ``ROOT/masks/SPLIT/CLASS/STEM.png``.

Shortcut masks, when known, lie at ``ROOT/shortcuts/SPLIT/CLASS/STEM.png``. ``ROOT/train`` is
required; ``val`` and ``test`` are carved from train when absent. An image without a mask file
gets an all-zero mask (the alignment losses skip it).
"""

from __future__ import annotations

from pathlib import Path

from lookright.data.records import SPLITS, Problems, Record
from lookright.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
REGIONS = ("masks", "shortcuts")


def scan_folder(root: str | Path) -> list[Record]:
    """Every image under ``ROOT/{train,val,test}/CLASS/``, sorted, with its mask files if present."""
    root = Path(root).expanduser()
    if not (root / "train").is_dir():
        raise DataError(f"data.root: no folder {root / 'train'}; lay images out as ROOT/train/CLASS/IMAGE "
                        "(and optionally ROOT/val, ROOT/test, ROOT/masks/SPLIT/CLASS/STEM.png)")
    problems = Problems(f"image folder {root}")
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name not in (*SPLITS, *REGIONS):
            problems.add(f"unexpected folder {entry}: ROOT holds only {', '.join(SPLITS + REGIONS)}")
    records = []
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            for image in sorted(class_dir.iterdir()):
                if image.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                region = [root / r / split / class_dir.name / f"{image.stem}.png" for r in REGIONS]
                records.append(Record(image=image, label=class_dir.name, split=split,
                                      mask=region[0] if region[0].is_file() else None,
                                      shortcut=region[1] if region[1].is_file() else None, where=str(image)))
    if not any(r.split == "train" for r in records):
        problems.add(f"{root / 'train'} holds no images in class folders (ROOT/train/CLASS/IMAGE.png)")
    problems.raise_if_any()
    return records
