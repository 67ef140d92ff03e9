"""The text-conditioned attribute classifier of the classification protocol.

Input: L2-normalised image and text embeddings ``v, t`` of the CLIP; features
``[v, t, v * t]``; an MLP (``hidden`` units, GELU) with one linear output block per attribute.
Trained on consistent captions, it may answer from the text alone: that is the text shortcut
the conflicting captions expose.
"""

from __future__ import annotations

import torch
from torch import nn


class AttributeHead(nn.Module):
    def __init__(self, dim: int, vocab_sizes: dict[str, int], hidden: int = 256) -> None:
        super().__init__()
        self.attributes = list(vocab_sizes)
        self.sizes = [vocab_sizes[a] for a in self.attributes]
        self.net = nn.Sequential(nn.Linear(3 * dim, hidden), nn.GELU(), nn.Linear(hidden, sum(self.sizes)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(torch.cat([image, text, image * text], dim=-1))
        return dict(zip(self.attributes, logits.split(self.sizes, dim=-1)))

    def predict(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        return {a: z.argmax(dim=-1) for a, z in self(image, text).items()}
