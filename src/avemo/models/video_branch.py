"""The study's video fusion branch: VGG-16 per-frame features -> 100-D utterance embedding.

frames of a clip -> VGG-16 conv features + adaptive pooling -> Linear(·, 100) per frame ->
masked mean over frames -> dual heads. The Linear is applied per frame before the mean (the two
commute), so the per-frame 100-D vectors are available as ``seq`` for fusion.
"""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.heads import DualHead
from avemo.models.masking import SpatialPool, encode_valid_frames, full_mask, masked_mean
from avemo.models.vgg_backbone import build_vgg16_features


class _FrameFeatures(nn.Module):
    def __init__(self, features: nn.Sequential, channels: int, pool: int, emb_dim: int) -> None:
        super().__init__()
        self.features = features
        self.pool = SpatialPool(pool)  # deterministic on CUDA for pool 1 or a 7x7 map
        self.proj = nn.Linear(channels * pool * pool, emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.features(x)).flatten(1))


class VideoBranch(nn.Module):
    """Input kind ``frame_seq``: x [B,T,3,H,W] with mask [B,T]; ``embedding`` is 100-D."""

    input_kind = "frame_seq"
    channels_last = True  # the engine keeps conv weights and frames NHWC on CUDA (tensor cores)

    def __init__(
        self,
        weights: str | None = "IMAGENET1K_V1",
        on_missing_weights: str = "error",
        frozen_blocks: int = 0,
        width_mult: float = 1.0,
        batch_norm: bool = False,
        pool: int = 1,
        emb_dim: int = 100,
        hidden: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        features, channels, self.weights_used = build_vgg16_features(
            weights=weights,
            on_missing_weights=on_missing_weights,
            width_mult=width_mult,
            frozen_blocks=frozen_blocks,
            batch_norm=batch_norm,
        )
        self.frame = _FrameFeatures(features, channels, pool, emb_dim)
        self.head = DualHead(emb_dim, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        mask = batch.get("mask")
        mask = full_mask(x) if mask is None else mask
        seq = encode_valid_frames(self.frame, x, mask, batch.get("valid_idx"))
        out = self.head(masked_mean(seq, mask))
        out["seq"] = seq
        return out
