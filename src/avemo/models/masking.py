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


def encode_valid_frames(encoder: nn.Module, x: torch.Tensor, mask: torch.Tensor,
                        valid_idx: torch.Tensor | None = None) -> torch.Tensor:
    """Run a per-frame encoder on valid frames only of ``x`` [B,T,C,H,W] -> [B,T,D].

    Skipping padded frames saves compute and keeps BatchNorm batch statistics free of padding.
    ``valid_idx``: the flat indices (b*T + t) of the valid frames, as the collate function
    builds them on the host; boolean-mask indexing would read the mask's count back from the
    GPU at every batch. The same frames in the same order either way.
    """
    if valid_idx is None:
        valid_idx = mask.flatten().nonzero().squeeze(1)
    flat = x.flatten(0, 1)
    feats = encoder(flat.index_select(0, valid_idx))
    out = feats.new_zeros((flat.shape[0], feats.shape[-1]))
    out = out.index_copy(0, valid_idx, feats)
    return out.view(*mask.shape, feats.shape[-1])


def spatial_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """``nn.AdaptiveAvgPool2d(size)(x)`` for a [N,C,H,W] map, without its backward where that
    is possible: adaptive average pooling has no deterministic CUDA backward kernel. Size 1 is a
    mean over the spatial dims; a map already ``size``×``size`` is returned as is (the pool is
    the identity there, e.g. VGG-16's 7×7 map at 224 px); a map a whole multiple of ``size``
    is average-pooled with fixed windows (the same windows). Equal values on CPU (tested). Any
    other shape keeps adaptive pooling, which strict determinism refuses on CUDA in training."""
    h, w = x.shape[-2:]
    if size == 1:
        return x.mean((2, 3), keepdim=True)
    if (h, w) == (size, size):
        return x
    if h % size == 0 and w % size == 0:
        return nn.functional.avg_pool2d(x, (h // size, w // size))
    return nn.functional.adaptive_avg_pool2d(x, size)


class SpatialPool(nn.Module):
    """:func:`spatial_pool` as a module (no parameters: state dicts are unchanged)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_pool(x, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"
