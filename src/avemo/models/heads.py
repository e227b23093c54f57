"""The dual classification head shared by every model."""

from __future__ import annotations

import torch
from torch import nn

from avemo.labels import EMOTIONS, SENTIMENTS


def _head(in_dim: int, hidden: int, dropout: float, n_out: int) -> nn.Module:
    if hidden <= 0:  # hidden=0: a plain linear probe on the shared embedding
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_out))
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_out),
    )


class DualHead(nn.Module):
    """Two independent heads on one shared embedding: emotion (7 logits), sentiment (3)."""

    def __init__(self, in_dim: int, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.emotion = _head(in_dim, hidden, dropout, len(EMOTIONS))
        self.sentiment = _head(in_dim, hidden, dropout, len(SENTIMENTS))

    def forward(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"emotion": self.emotion(emb), "sentiment": self.sentiment(emb), "embedding": emb}
