"""Seeds x grid: expand a config into run specs and run them locally (in order, or in worker
processes that never outlive the sweep). :mod:`lookright.runs.ray_backend` runs the same specs on Ray.

A pipeline passes a module-level function ``execute(spec) -> metrics``; the runner calls it for
each spec and collects the results in order. A run that fails with a lookright error does not
stop the others: its error is collected and reported once every run has ended.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from lookright.errors import ConfigError, RunError
from lookright.runs.config import parse_value, split_assignment
from lookright.runs.folder import RunFolder


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its resolved config tree, its folder, and how it is labelled."""

    config: dict
    run_dir: str
    label: str
    threads: int | None = None  # set by the runner: threads of the process that runs it
    extra: dict = field(default_factory=dict)

    def resolved(self, threads_key: str) -> dict:
        """The config tree with the runner's thread count at ``threads_key`` (e.g. ``train.threads``)."""
        if not self.threads:
            return self.config
        *parents, leaf = threads_key.split(".")
        tree = dict(self.config)
        node = tree
        for key in parents:
            node[key] = dict(node.get(key) or {})
            node = node[key]
        node[leaf] = self.threads
        return tree


def expand_grid(grid: list[str]) -> list[list[tuple[str, object]]]:
    """``["a=1,2", "b=x"]`` -> ``[[("a", 1), ("b", "x")], [("a", 2), ("b", "x")]]``; a key or a value
    given twice is refused (it would train one folder twice)."""
    axes, keys = [], set()
    for item in grid:
        key, values = split_assignment(item, "--grid", "optim.lr=0.01,0.001")
        if key in keys:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid {key}=v1,v2")
        keys.add(key)
        if key.split(".")[0] in ("seed", "name", "out_dir"):
            raise ConfigError(f"--grid {key}: seeds come from --seeds/--first-seed, and a sweep's name and out_dir "
                              "are set once; grid over the config's settings")
        raw = [v.strip() for v in values.split(",")]
        parsed = [parse_value(key, v) for v in raw]
        canonical = [repr(v) for v in parsed]
        if len(set(canonical)) != len(canonical) or "" in raw:
            dup = sorted({r for r, c in zip(raw, canonical, strict=True) if canonical.count(c) > 1 or r == ""})
            raise ConfigError(f"--grid {item!r} lists the value(s) {dup} twice (as the same value) or empty; "
                              "give each value once")
        axes.append(list(zip([key] * len(parsed), parsed, strict=True)))
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def sample_grid(combos: list, samples: int | None, seed: int = 0) -> list:
    """Random search over the grid: ``samples`` combinations drawn without replacement (seeded),
    in grid order; all of them when ``samples`` is None or not smaller than the grid."""
    if samples is None or samples >= len(combos):
        return combos
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    import random

    keep = sorted(random.Random(seed).sample(range(len(combos)), samples))
    return [combos[i] for i in keep]


def combo_suffix(combo: list[tuple[str, object]]) -> str:
    return "-".join(f"{k.replace('.', '_')}_{v}" for k, v in combo)


def seed_range(seeds: int, first_seed: int | None, default_first: int) -> range:
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    start = default_first if first_seed is None else first_seed
    return range(start, start + seeds)


def check_unique(specs: list[RunSpec]) -> None:
    seen: dict[str, str] = {}
    for s in specs:
        key = str(Path(s.run_dir).resolve())
        if key in seen:
            raise ConfigError(f"two runs of this sweep would share the folder {s.run_dir} ({seen[key]} and {s.label}); "
                              "give them different names or seeds")
        seen[key] = s.label


def check_folders(specs: list[RunSpec], ignore: tuple[str, ...]) -> list[RunSpec]:
    """Refuse a whole sweep before anything runs: two specs sharing a folder, a folder being run
    by another process, a folder holding another config (the error lists the differing keys)."""
    check_unique(specs)
    for spec in specs:
        folder = RunFolder(spec.run_dir)
        state = folder.state()
        if state == "running":
            raise RunError(f"{spec.run_dir} is being run by another process; wait for it, or choose another "
                           "name or out_dir")
        if state != "new":
            folder.check_fingerprint(spec.config, ignore)
    return specs


# ---- worker processes that die with their parent ----------------------------------------
def _die_with_parent(parent: int) -> None:
    """Worker initializer: exit when the sweep process dies, however it dies (SIGKILL included)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us when the parent dies
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent, which stops us

    def watch() -> None:  # a portable second guard
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=True, cancel_futures=True)


class _Terminated(BaseException):
    pass


def _on_sigterm(_sig, _frame) -> None:
    raise _Terminated


def guarded(execute: Callable, spec, **kwargs) -> dict:
    """Run one spec; any error becomes ``{"error": ..., "run_dir": ...}`` so the other runs go on
    (the run's own folder records it as failed)."""
    try:
        return execute(spec, **kwargs)
    except Exception as exc:  # noqa: BLE001  (a sweep outlives one run's bug, OOM or bad input)
        return {"error": f"{type(exc).__name__}: {exc}", "run_dir": getattr(spec, "run_dir", None)}


def run_local(execute: Callable, specs: list, jobs: int = 1, on_done: Callable | None = None) -> list[dict]:
    """``[execute(s) for s in specs]`` in order; with ``jobs > 1`` in that many spawned worker
    processes (one thread each) that are killed when this process is interrupted, terminated or killed."""
    results: list[dict | None] = [None] * len(specs)
    if jobs <= 1 or len(specs) <= 1:
        for i, spec in enumerate(specs):
            results[i] = guarded(execute, spec)
            if on_done:
                on_done(results[i])
        return results
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_sigterm)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(guarded, execute, spec): i for i, spec in enumerate(specs)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except BrokenProcessPool:  # a worker was killed (out of memory, kill -9): no run can go on
                results[i] = {"error": "its worker process was killed (out of memory?); run the sweep again to "
                                       "resume it", "run_dir": specs[i].run_dir}
            if on_done:
                on_done(results[i])
        pool.shutdown(wait=True)
    except BaseException as exc:
        _kill_pool(pool)
        if isinstance(exc, _Terminated):
            raise SystemExit(143) from None
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return results


def raise_failures(results: list[dict]) -> None:
    """After a sweep: one RunError listing the runs that failed (the finished ones are kept)."""
    failed = [r for r in results if r and "error" in r]
    if failed:
        lines = "\n".join(f"  {r['run_dir']}: {r['error']}" for r in failed[:20])
        more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
        raise RunError(f"{len(failed)} of {len(results)} runs failed (finished runs are kept; run the sweep "
                       f"again to retry the others):\n{lines}{more}")


def run_specs(execute: Callable, specs: list[RunSpec], backend: str = "local", jobs: int = 1,
              on_done: Callable | None = None, address: str | None = None, cpus_per_run: float = 1.0,
              gpus_per_run: float = 0.0, storage: str | Path = "runs", asha=None) -> list[dict]:
    """Run ``specs`` on the chosen backend; parallel runs get one thread each (``cpus_per_run`` on
    Ray). Finished runs are read back here and never sent to a worker (their fingerprints were
    checked when the specs were made)."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r}: choose local or ray")
    if address is not None and backend != "ray":
        raise ConfigError("--address is a Ray cluster address; add --backend ray")
    if asha is not None and backend != "ray":
        raise ConfigError("--scheduler asha runs on Ray Tune; add --backend ray")
    if backend == "ray" and jobs > 1:
        raise ConfigError("--jobs sets local worker processes; on Ray each run takes --cpus-per-run CPUs and Ray "
                          "runs as many at once as the cluster holds")
    results: list[dict | None] = [None] * len(specs)
    todo = []
    for i, spec in enumerate(specs):
        folder = RunFolder(spec.run_dir)
        if folder.state() == "finished":
            results[i] = folder.metrics()
            if on_done:
                on_done(results[i])
        else:
            todo.append(i)
    if todo:
        fresh = _run_backend(execute, [specs[i] for i in todo], backend, jobs, on_done, address, cpus_per_run,
                             gpus_per_run, storage, asha)
        for i, r in zip(todo, fresh, strict=True):
            results[i] = r
    return results


def _run_backend(execute, specs, backend, jobs, on_done, address, cpus_per_run, gpus_per_run, storage,
                 asha) -> list[dict]:
    if backend == "ray":
        from lookright.runs.ray_backend import run_ray

        return run_ray(execute, specs, address, cpus_per_run, gpus_per_run, on_done, storage, asha)
    if jobs > 1 and len(specs) > 1:
        specs = [replace(s, threads=1) for s in specs]
    return run_local(execute, specs, jobs, on_done)
