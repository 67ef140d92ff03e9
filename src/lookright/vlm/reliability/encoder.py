"""Batched, gradient-aware image and text embeddings of a :class:`ClipBundle`, with a
per-caption tokenisation cache (captions repeat across epochs; tokenising is the slow part)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lookright.vlm.backends import ClipBundle


class ClipEncoder:
    def __init__(self, clip: ClipBundle) -> None:
        self.clip = clip
        self._cache: dict[str, dict[str, torch.Tensor]] = {}

    def tokens(self, captions: list[str]) -> dict[str, torch.Tensor]:
        encs = []
        for c in captions:
            if c not in self._cache:
                enc = self.clip.tokenize([c])
                self._cache[c] = {k: v.detach().cpu() for k, v in enc.items()} if isinstance(enc, dict) else {"ids": enc.cpu()}
            encs.append(self._cache[c])
        length = max(e[next(iter(e))].shape[1] for e in encs)
        out = {}
        for key in encs[0]:
            rows = []
            for e in encs:
                row = e[key]
                pad = length - row.shape[1]
                if pad:  # input_ids: repeat the end token (CLIP pools at the first one); masks: zeros
                    fill = row[:, -1:].expand(1, pad) if key != "attention_mask" else torch.zeros(1, pad, dtype=row.dtype)
                    row = torch.cat([row, fill], dim=1)
                rows.append(row)
            out[key] = torch.cat(rows).to(self.clip.device)
        return out

    def text(self, captions: list[str]) -> torch.Tensor:
        enc = self.tokens(captions)
        return F.normalize(self.clip._text(enc["ids"] if "ids" in enc else enc), dim=-1)

    def image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(pixels)

    @torch.no_grad()
    def text_batched(self, captions: list[str], batch: int = 512) -> torch.Tensor:
        return torch.cat([self.text(captions[s:s + batch]) for s in range(0, len(captions), batch)])

    @torch.no_grad()
    def image_batched(self, pixels: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return torch.cat([self.image(pixels[s:s + batch]) for s in range(0, len(pixels), batch)])
