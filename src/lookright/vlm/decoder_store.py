"""Fitted decoders in the mask cache, so that every split's masks come from one decoder.

``root/decoders/<owner>/`` where ``owner`` is the SHA-256 of the teacher's key fields and the
dataset's identity without its split (benchmark, seed): ``<train>.pt`` holds the decoder fitted
on the training images whose digest is ``train`` (weights and fit record), ``latest.json`` names
the training images of the latest fit or use. The train split's masks record it; the val and
test splits read it, and their cache keys name it, so masks of a decoder fitted on other
training images are never reused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lookright.atomic import write_atomic, write_json_atomic
from lookright.errors import MaskError
from lookright.vlm.cache import cache_key
from lookright.vlm.decoder import MaskDecoder, from_state, state


class DecoderStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser() / "decoders"

    def folder(self, owner: dict) -> Path:
        return self.root / cache_key(owner)[:16]

    def point(self, owner: dict, train: str) -> None:
        write_json_atomic(self.folder(owner) / "latest.json", {"train_images": train})

    def save(self, owner: dict, train: str, decoder: MaskDecoder, record: dict) -> None:
        folder = self.folder(owner)
        write_atomic(folder / f"{train[:16]}.pt", lambda tmp: torch.save({**state(decoder), "record": record}, tmp))
        self.point(owner, train)

    def load(self, owner: dict, train: str) -> MaskDecoder | None:
        path = self.folder(owner) / f"{train[:16]}.pt"
        if not path.is_file():
            return None
        try:
            return from_state(torch.load(path, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, KeyError):
            return None  # a corrupt entry is refitted

    def latest(self, owner: dict) -> str:
        try:
            train = json.loads((self.folder(owner) / "latest.json").read_text())["train_images"]
        except (OSError, ValueError, KeyError):
            train = None
        if train is None or not (self.folder(owner) / f"{train[:16]}.pt").is_file():
            raise MaskError("the decoder stage is fitted on the train split, and no decoder is stored for this "
                            "teacher and benchmark: compute the train split's masks first (`lookright teach CONFIG` "
                            "does all splits in order)")
        return train
