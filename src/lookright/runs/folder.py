"""The run folder contract, shared by every pipeline (supervised, rl, vlm reliability).

A run folder holds::

    run.json      kind, status, fingerprint, provenance, timestamps, error (written atomically)
    config.yaml   the resolved config, written once when the run is created
    metrics.json  the results; written only when the run finishes
    .lock         an exclusive ``flock`` held by the one process working on the run
    ...           the pipeline's own files (checkpoints/, model.zip, adapter/, figures/)

Status: ``running`` (a process holds the lock), ``interrupted`` (``running`` in run.json but
nobody holds the lock: the process died), ``failed`` (the error is in run.json) or
``finished``. Only finished runs are read back or summarised.

The fingerprint is the SHA-256 of the resolved config's canonical JSON without the keys that do
not change what is trained (``ignore``: output folder, threads, data location, ...). Resuming or
reusing a run with another fingerprint is refused, and the error lists the keys that differ.
Nothing is written before every check has passed, so a failed start never touches an existing
run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from lookright.errors import RunError
from lookright.atomic import write_json_atomic, write_text_atomic

RUN_JSON, CONFIG, METRICS, LOCK = "run.json", "config.yaml", "metrics.json", ".lock"
STATUSES = ("running", "failed", "finished")  # as written in run.json; "interrupted" is read, not written
#: how an interrupted run of each kind is continued
CONTINUE = {"supervised": "`lookright train CONFIG --run-dir DIR --resume`, or run its sweep again",
            "rl": "run `lookright rl train` again: the agent is trained anew in the same folder",
            "reliability": "run `lookright vlm tune` / `vlm eval` again: the run restarts in the same folder"}


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


def fingerprint_tree(tree: dict, ignore: tuple[str, ...] = ()) -> dict:
    """The config tree that the fingerprint covers (a deep copy without the ``ignore`` keys)."""
    tree = json.loads(json.dumps(tree, default=str))
    for key in ignore:
        _drop(tree, key)
    return tree


def fingerprint(tree: dict, ignore: tuple[str, ...] = ()) -> str:
    canonical = json.dumps(fingerprint_tree(tree, ignore), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty mapping is a leaf)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_diff(old: dict, new: dict, limit: int = 12) -> str:
    """``"train.epochs: 3 -> 5; seed: 0 -> 1"`` for the keys whose values differ."""
    a, b = flatten(old), flatten(new)
    missing = object()
    keys = sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))
    parts = [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"... and {len(keys) - limit} more")
    return "; ".join(parts) or "(no key differs; the folder was written by another version of lookright)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunFolder:
    """One run's folder. ``RunFolder(path).state()`` reads without writing; :meth:`open` takes the
    lock and checks the fingerprint before anything is written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.created = False  # this process created the folder (it did not exist)
        self.started = 0.0

    # ---- reading -------------------------------------------------------------------------
    def info(self) -> dict | None:
        """``run.json`` as a dict, or None when the folder holds none."""
        p = self.path / RUN_JSON
        if not p.is_file():
            return None
        try:
            info = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise RunError(f"{p} cannot be read ({exc}); the run folder is damaged: delete {self.path} "
                           "and run it again") from None
        if not isinstance(info, dict) or info.get("status") not in STATUSES or not isinstance(info.get("kind"), str):
            raise RunError(f"{p} is not a lookright run record (status must be one of {', '.join(STATUSES)}, "
                           f"and kind a string); restore it or move {self.path} away")
        return info

    def locked_by_other(self) -> bool:
        """Whether another process holds the run's lock (a run in progress). The probe takes a
        shared lock for an instant; :meth:`_lock` retries briefly, so probes never refuse a run."""
        p = self.path / LOCK
        if not p.is_file() or self._lock_fd is not None:
            return False
        fd = os.open(p, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock this probe took
        return False

    def state(self) -> str:
        """``new`` | ``running`` | ``interrupted`` | ``failed`` | ``finished``."""
        for p in (self.path, *self.path.parents):
            if p.exists():
                if not p.is_dir():
                    raise RunError(f"{p} is a file, so {self.path} cannot be a run folder; choose another "
                                   "--run-dir or out_dir")
                break
        info = self.info()
        if info is None:
            if self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir()):
                raise RunError(f"{self.path} is not empty and holds no run.json, so it is not a lookright run "
                               "folder (or one written by an older version); choose another folder or move it away")
            return "new"
        if info["status"] == "running":
            return "running" if self.locked_by_other() else "interrupted"
        return info["status"]

    def metrics(self) -> dict:
        """The results of a finished run."""
        p = self.path / METRICS
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise RunError(f"{p} cannot be read ({exc}); delete {self.path} and run it again") from None

    def check_fingerprint(self, tree: dict, ignore: tuple[str, ...], kind: str | None = None) -> None:
        info = self.info()
        if info is None or info.get("fingerprint") == fingerprint(tree, ignore):
            return
        if kind is not None and info["kind"] != kind:
            raise RunError(f"{self.path} holds a {info['kind']} run, not a {kind} run; choose another folder")
        old = fingerprint_tree(info.get("config") or {}, ignore)
        raise RunError(
            f"{self.path} holds a run of another config ({config_diff(old, fingerprint_tree(tree, ignore))}). "
            "Give this config another name (name=...), another --run-dir or out_dir, or delete the folder")

    def check_config_file(self) -> dict:
        """The run's ``config.yaml``, refused when it no longer matches the run's fingerprint (edited
        after the run: ``run.json`` still holds the original)."""
        info = self.info() or {}
        try:
            tree = yaml.safe_load((self.path / CONFIG).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"{self.path / CONFIG} cannot be read ({exc}); run.json holds the original config") \
                from None
        ignore = tuple(info.get("fingerprint_ignores", ()))
        if info and fingerprint(tree or {}, ignore) != info.get("fingerprint"):
            diff = config_diff(fingerprint_tree(info.get("config") or {}, ignore), fingerprint_tree(tree or {}, ignore))
            raise RunError(f"{self.path / CONFIG} was edited after the run ({diff}); its results belong to the "
                           "original config, kept in run.json: restore it (or train the edited config in a new folder)")
        return tree

    def require_finished(self, kind: str | None = None) -> str:
        """Check that the folder holds a finished run (of ``kind``) whose config.yaml is intact;
        returns its kind."""
        if not self.path.exists():
            raise RunError(f"{self.path} does not exist")
        state = self.state()
        if state != "finished":
            raise RunError(f"{self.path} holds no finished run (state: {state}); only finished runs can be loaded")
        found = self.info()["kind"]
        if kind is not None and found != kind:
            raise RunError(f"{self.path} holds a {found} run, not a {kind} run")
        self.check_config_file()
        return found

    def reuse(self, tree: dict, ignore: tuple[str, ...]) -> tuple[dict | None, bool]:
        """For a sweep: ``(metrics, False)`` for a finished run of this config (read back),
        ``(None, True)`` for an interrupted or failed one (to resume), ``(None, False)`` for a new
        one; a run of another config is a RunError."""
        state = self.state()
        if state != "new":
            self.check_fingerprint(tree, ignore)
        if state == "finished":
            return self.metrics(), False
        return None, state in ("interrupted", "failed")

    # ---- writing -------------------------------------------------------------------------
    def open(self, kind: str, tree: dict, config_text: str, ignore: tuple[str, ...] = (),
             resume: bool = False) -> str:
        """Take the lock and start (``resume=False``: a new run) or continue (``resume=True``: an
        interrupted or failed run with the same fingerprint) the run. Returns the state it found."""
        state = self.state()
        if state == "running":
            raise RunError(f"{self.path} is being run by another process ({self._holder()}); wait for it, "
                           "or choose another --run-dir")
        if state != "new":
            self.check_fingerprint(tree, ignore, kind)
        if state == "finished":
            raise RunError(f"{self.path} holds a finished run (results in {self.path / METRICS}); nothing is "
                           "overwritten: choose another --run-dir or name, or delete the folder to run it again")
        if state in ("interrupted", "failed") and not resume:
            raise RunError(f"{self.path} holds an {state} run of this config; continue it with --resume "
                           "(sweeps resume it by themselves), or delete the folder to start again")
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the run folder {self.path} ({exc.strerror}); choose another "
                           "--run-dir or out_dir") from None
        self._lock()
        info = self.info()
        if (state == "new") != (info is None) or (info or {}).get("status") == "finished":
            self.release()  # another process created or finished it between the check and the lock
            raise RunError(f"{self.path} was changed by another process meanwhile; run the command again")
        record = {
            "kind": kind, "status": "running", "fingerprint": fingerprint(tree, ignore),
            "fingerprint_ignores": list(ignore), "config": tree,
            "created_at": (info or {}).get("created_at", now()), "started_at": now(),
            "pid": os.getpid(), "attempts": (info or {}).get("attempts", 0) + 1,
        }
        write_json_atomic(self.path / RUN_JSON, record)
        if state == "new":
            write_text_atomic(self.path / CONFIG, config_text)
        self.started = time.perf_counter()
        return state

    @contextmanager
    def finished_for_update(self, what: str = "evaluate"):
        """Lock a finished run to add results to it; yields its metrics, written back atomically on exit."""
        state = self.state()
        if state != "finished":
            hint = {"new": "it holds no run", "running": "it is still training",
                    "interrupted": f"its training was interrupted: continue it first ({CONTINUE.get(self._kind(), '')})",
                    "failed": f"its training failed ({(self.info() or {}).get('error', '?')})"}.get(state, state)
            raise RunError(f"cannot {what} {self.path}: {hint}")
        self._lock(f"another process is using {self.path} (training or evaluating it); wait for it")
        try:
            metrics = self.metrics()
            yield metrics
            write_json_atomic(self.path / METRICS, metrics)
        finally:
            self.release()

    def _kind(self) -> str:
        return (self.info() or {}).get("kind", "")

    def _holder(self) -> str:
        info = self.info() or {}
        return f"pid {info.get('pid', '?')} since {info.get('started_at', '?')}"

    def _lock(self, busy: str | None = None, tries: int = 20) -> None:
        """Take the exclusive lock, retrying for about a second (a state probe holds it for an instant)."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(tries):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return
            except BlockingIOError:
                if attempt + 1 < tries:
                    time.sleep(0.05)
        os.close(fd)
        raise RunError(busy or f"{self.path} is being run by another process ({self._holder()}); wait for it, "
                       "or choose another --run-dir")

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _update(self, **fields) -> None:
        info = self.info() or {}
        info.update(fields)
        write_json_atomic(self.path / RUN_JSON, info)

    def finish(self, metrics: dict, provenance: dict | None = None) -> dict:
        """Write ``metrics.json`` (with provenance and wall time), mark the run finished, release the lock."""
        if provenance is not None:
            metrics["provenance"] = provenance
        write_json_atomic(self.path / METRICS, metrics)
        self._update(status="finished", finished_at=now(), wall_time_s=metrics.get("wall_time_s"),
                     provenance=metrics.get("provenance"))
        self.release()
        return metrics

    def fail(self, error: BaseException, keep_if_empty: bool = False) -> None:
        """Record the error; a folder this process created and that holds no results yet is removed."""
        if self._lock_fd is None:
            return
        if self.created and not keep_if_empty and not self._has_outputs():
            shutil.rmtree(self.path, ignore_errors=True)  # still locked: nobody can take it meanwhile
            self.release()
            return
        self._update(status="failed", failed_at=now(), error=f"{type(error).__name__}: {error}")
        self.release()

    @contextmanager
    def guard(self):
        """Around a run's work after :meth:`open`: an error is recorded (:meth:`fail`); Ctrl-C or a
        scheduler's stop leaves the run interrupted (resumable); the lock is always released."""
        try:
            yield self
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            self.release()

    def _has_outputs(self) -> bool:
        return any(p.name not in (RUN_JSON, CONFIG, LOCK) for p in self.path.iterdir())

    def __del__(self) -> None:  # never leak the lock's descriptor
        self.release()


@dataclass
class LoadedRun:
    """A finished run with its trained model (see :func:`lookright.load_run`)."""

    kind: str
    path: Path
    config: Any
    metrics: dict
    model: Any


def finished_runs(root: str | Path, kind: str | None = None) -> list[RunFolder]:
    """Every finished run folder under ``root`` (of ``kind`` when given), sorted by path."""
    out = []
    root = Path(root)
    if (root / RUN_JSON).is_file():
        candidates = [root / RUN_JSON]
    else:
        candidates = sorted(root.rglob(RUN_JSON))
    for p in candidates:
        run = RunFolder(p.parent)
        try:
            info = run.info()
        except RunError:
            continue
        if info and info.get("status") == "finished" and (kind is None or info.get("kind") == kind) \
                and (p.parent / METRICS).is_file():
            out.append(run)
    return out
