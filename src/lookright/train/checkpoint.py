"""Checkpoints of a supervised run (written atomically by :func:`lookright.atomic.save_torch_atomic`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lookright.errors import CheckpointError


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; this folder holds no run to resume or evaluate "
            "(train one with `lookright train CONFIG`)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc}); delete it and train again") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict; "
                              "delete it and train again")
    return state


def load_weights(model: torch.nn.Module, state: dict, path: Path) -> None:
    """``model.load_state_dict(state["model"] or state)``, strictly; a mismatch is a CheckpointError."""
    weights = state.get("model", state)
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"checkpoint {path} holds no model weights (no 'model' entry of tensors); "
                              "it was not written by lookright: train the run again")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"checkpoint {path} does not fit the configured model ({first}); the run was "
                              "trained with another model config: evaluate it with its own config.yaml") from None
