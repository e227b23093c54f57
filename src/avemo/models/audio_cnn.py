"""1-D CNN over a log-mel (or SSL embedding) sequence with masked mean pooling."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avemo.models.audio_mlp import InputStandardizer
from avemo.models.heads import DualHead
from avemo.models.masking import full_mask, masked_mean


class _ConvBlock(nn.Module):
    """Conv1d (stride 1, 'same' padding) -> LayerNorm over channels -> GELU.

    LayerNorm is per time step, so unlike BatchNorm its statistics never see padding.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation
        )
        self.norm = nn.LayerNorm(c_out)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B,T,C]
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.drop(self.act(self.norm(y)))


class AudioCNN(nn.Module):
    """Input kind ``audio_seq``: x [B,T,in_dim] with mask [B,T] (in_dim = n_mels or SSL dim)."""

    input_kind = "audio_seq"

    def __init__(
        self,
        in_dim: int = 64,
        channels: int = 128,
        layers: int = 3,
        kernel: int = 5,
        hidden: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.norm = InputStandardizer(in_dim)
        dims = [in_dim] + [channels] * layers
        self.blocks = nn.ModuleList(
            _ConvBlock(dims[i], dims[i + 1], kernel, 2**i, dropout) for i in range(layers)
        )
        self.head = DualHead(channels, hidden, dropout)

    def set_input_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.norm.set_stats(mean, std)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        mask = batch.get("mask")
        mask = full_mask(x) if mask is None else mask
        m = mask.unsqueeze(-1).to(x.dtype)
        # Zeroing padded steps before every conv makes them look exactly like the conv's own
        # zero padding of an unpadded item, so valid outputs are identical.
        h = self.norm(x) * m
        for block in self.blocks:
            h = block(h) * m
        out = self.head(masked_mean(h, mask))
        out["seq"] = h
        return out
