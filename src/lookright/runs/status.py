"""``lookright status ROOT``: every run folder under a root with its state, for sweeps of
hundreds of runs (what is finished, running, interrupted, failed and why)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lookright.errors import RunError
from lookright.runs.folder import RUN_JSON, RunFolder
from lookright.runs.summary import markdown

STATES = ("finished", "running", "interrupted", "failed")


def scan(root: str | Path) -> list[dict]:
    """``[{"path", "kind", "state", "attempts", "error"}]`` for every run folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"{root} is not a folder; pass the folder that holds your run folders")
    rows = []
    for p in sorted(root.rglob(RUN_JSON)):
        folder = RunFolder(p.parent)
        try:
            info, state = folder.info() or {}, folder.state()
        except RunError as exc:
            info, state = {"error": str(exc)}, "damaged"
        rows.append({"path": str(p.parent), "kind": info.get("kind", "?"), "state": state,
                     "attempts": info.get("attempts", 0), "error": info.get("error") or ""})
    return rows


def status_text(rows: list[dict], show: tuple[str, ...] = ("running", "interrupted", "failed", "damaged")) -> str:
    counts = Counter(r["state"] for r in rows)
    head = ", ".join(f"{counts[s]} {s}" for s in (*STATES, "damaged") if counts[s]) or "no run folders"
    listed = [r for r in rows if r["state"] in show]
    if not listed:
        return head + "\n"
    body = [[r["path"], r["kind"], r["state"], str(r["attempts"]), r["error"][:200]] for r in listed]
    return head + "\n\n" + markdown(["run folder", "kind", "state", "attempts", "error"], body)
