"""Where a run ran, in one schema for every pipeline (``run.json`` and ``metrics.json``).

``{"git_commit", "versions": {package: version}, "device", "host", "python", "argv"}``; wall
time is ``wall_time_s`` next to it.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from lookright.errors import ConfigError

PACKAGES = ("lookright", "torch", "torchvision", "numpy", "pydantic")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    found = {}
    for name in (*PACKAGES, *extra):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device | str, packages: tuple[str, ...] = ()) -> dict:
    return {"git_commit": git_commit(), "versions": versions(packages), "device": device_name(device),
            "host": socket.gethostname(), "argv": sys.argv}


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a device that does not exist here is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{key}={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name} but this machine has no usable CUDA GPU; use {key}=cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={name} but this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"{key}={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def set_threads(threads: int | None, key: str = "train.threads") -> None:
    """``torch.set_num_threads``, refusing more threads than this machine has cores."""
    if not threads:
        return
    cores = os.cpu_count() or 1
    if threads > cores:
        raise ConfigError(f"{key}={threads} but this machine has {cores} CPU cores; use at most {cores}")
    torch.set_num_threads(threads)
