"""MLP on an utterance-level audio vector (the study's 192-D vector or 88-D eGeMAPS)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avemo.models.heads import DualHead


class InputStandardizer(nn.Module):
    """Per-feature (x - mean) / std with train-split statistics kept in the state dict.

    Audio features span very different scales (eGeMAPS); storing the statistics with the model
    means prediction always uses the training split's values. Standardised values are clamped
    to ±``CLAMP``: a feature nearly constant on train (std at the 1e-6 floor) would otherwise
    give a dev item a value beyond float16's range (65,504) at the first half-precision Linear.
    Real features stay far inside the bound (it changes nothing there). ``clamp=False`` for a
    standardiser that stays the identity (a fusion model without per-modality scaling): raw
    features are not standardised, and clipping them would scale them after all.
    """

    CLAMP = 100.0

    def __init__(self, dim: int, clamp: bool = True) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.clamp = clamp

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return z.clamp(-self.CLAMP, self.CLAMP) if self.clamp else z


class AudioMLP(nn.Module):
    """Input kind ``audio_vec``: x [B, in_dim]."""

    input_kind = "audio_vec"

    def __init__(
        self,
        in_dim: int = 192,
        width: int = 256,
        layers: int = 2,
        hidden: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.norm = InputStandardizer(in_dim)
        blocks: list[nn.Module] = []
        d = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(d, width), nn.LayerNorm(width), nn.GELU(), nn.Dropout(dropout)]
            d = width
        self.backbone = nn.Sequential(*blocks)
        self.head = DualHead(d, hidden, dropout)

    def set_input_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.norm.set_stats(mean, std)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(self.norm(batch["x"])))
