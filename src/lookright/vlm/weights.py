"""Is a CLIP's weight there? Checked from the config alone, before torch is imported, so that
a missing CLIP is reported at once and names the config key to set.

``key`` is where the settings live in the config: ``target.vlm`` (a VLM teacher) or ``model``
(a reliability run)."""

from __future__ import annotations

from pathlib import Path

from lookright.errors import ConfigError, DataError, LookrightError


def clip_problem(backend: str, path: str | Path | None, model_name: str | None, checkpoint: str | Path | None,
                 key: str = "target.vlm") -> LookrightError | None:
    """The error that loading this CLIP would raise for missing settings or files (None when all is there)."""
    if backend == "hf":
        if path is None:
            return ConfigError(f"the hf backend needs {key}.path: a local CLIP folder written by save_pretrained")
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            return DataError(
                f"no Hugging Face CLIP at {folder} (config.json missing): pretrain a small CLIP with "
                f"`lookright vlm pretrain --out {path}` (about 5 minutes on 2 CPU cores), or set {key}.path=DIR "
                "to a CLIP folder written by save_pretrained (weights are read from local files only)")
        return None
    if backend == "open_clip":
        if model_name is None:
            return ConfigError(f"the open_clip backend needs {key}.model_name (e.g. ViT-B-16) and {key}.checkpoint")
        if checkpoint is None or not Path(checkpoint).expanduser().is_file():
            return DataError(f"open_clip {model_name}: checkpoint file {checkpoint} not found; set "
                             f"{key}.checkpoint=FILE (a local .pt / .bin / .safetensors state dict)")
        return None
    return ConfigError(f"unknown CLIP backend {backend!r}; choose hf or open_clip")


def check_clip(settings, key: str) -> None:
    """Raise :func:`clip_problem`'s error for settings with ``backend``, ``path``, ``model_name``
    and ``checkpoint`` (a ``target.vlm`` section or a reliability ``model`` section)."""
    problem = clip_problem(settings.backend, settings.path, settings.model_name, settings.checkpoint, key)
    if problem is not None:
        raise problem
