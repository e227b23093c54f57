"""Mask helpers: padded positions must never change a valid item's output."""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` [B,T,D] over valid steps (``mask`` [B,T] bool)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def full_mask(x: torch.Tensor) -> torch.Tensor:
    """All-valid mask for an unpadded [B,T,...] batch."""
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


class AttentionPool(nn.Module):
    """Learned attention pooling over time; padded steps get zero weight."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(x).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=1).to(x.dtype)
        return (w.unsqueeze(-1) * x).sum(1)


def encode_valid_frames(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run a per-frame encoder on valid frames only of ``x`` [B,T,C,H,W] -> [B,T,D].

    Skipping padded frames saves compute and keeps BatchNorm batch statistics free of padding.
    """
    feats = encoder(x[mask])
    out = feats.new_zeros((*mask.shape, feats.shape[-1]))
    out[mask] = feats
    return out
