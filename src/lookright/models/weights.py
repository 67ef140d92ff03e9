"""Local weights, loaded strictly: ``.safetensors`` or a torch ``.pt``/``.pth`` state dict.

Nothing is downloaded. Every key must match the model in name and shape, except the classifier
head (the keys under ``head.``): when its shape differs (ImageNet's 1000 classes into a
10-class model) it is dropped and the model's head keeps its fresh initialisation. Any other
missing, unexpected or mis-shaped key is a ConfigError that lists the first few and the count.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookright.errors import ConfigError

KEY = "model.options.weights"


def read_state(path: Path) -> dict:
    """The state dict stored at ``path`` (a ``{"state_dict": ...}`` wrapper is unwrapped)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{KEY}: {path} is not a readable state dict ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{KEY}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def _show(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "") + f" [{len(keys)} keys]"


def backbone_state(path: Path, model: nn.Module, head: str | None = "fc", what: str = "ResNet-18") -> dict:
    """The state dict at ``path``, checked against ``model``; the ``head`` keys dropped when
    their shape differs. ``what`` names the architecture in the error."""
    state = read_state(path)
    own = model.state_dict()
    prefix = f"{head}." if head else None

    def in_head(key: str) -> bool:
        return prefix is not None and key.startswith(prefix)

    head_differs = any(in_head(k) and k in own and getattr(v, "shape", None) != own[k].shape for k, v in state.items())
    if head_differs:
        state = {k: v for k, v in state.items() if not in_head(k)}
    missing = sorted(k for k in own if k not in state and not (head_differs and in_head(k)))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(k for k, v in state.items() if k in own and getattr(v, "shape", None) != own[k].shape)
    if missing or unexpected or shapes:
        problems = [f"missing {_show(missing)}" if missing else "", f"unexpected {_show(unexpected)}" if unexpected else "",
                    f"wrong shape {_show(shapes)}" if shapes else ""]
        raise ConfigError(f"{KEY}: {path} is not a {what} state dict (" + "; ".join(p for p in problems if p) + ")")
    return state


def load_local_weights(model: nn.Module, weights: str, head: str | None, what: str) -> None:
    """Load the local file ``weights`` into ``model`` strictly (see the module docstring)."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{KEY}: no file at {path}; give a local .safetensors or .pt state-dict file")
    model.load_state_dict(backbone_state(path, model, head, what), strict=False)
