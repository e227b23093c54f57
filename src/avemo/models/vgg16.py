"""VGG-16 on single frames, ImageNet classifier replaced by the dual heads."""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.heads import DualHead
from avemo.models.masking import SpatialPool
from avemo.models.vgg_backbone import build_vgg16_features


class VGG16(nn.Module):
    """Input kind ``frame``: x [B,3,H,W] (ImageNet-normalised).

    ``pool`` is the adaptive pooling grid before the heads (torchvision uses 7; 1 is global
    average pooling, a far smaller head). ``weights_used`` records which weights were loaded.
    The heads read the pooled map flattened (pool 7: 25,088 values, the study's FC head); the
    exported ``embedding`` is the map's spatial mean (512-D at full width), a compact frame
    descriptor for fusion and clip means, the same at any ``pool``.
    """

    input_kind = "frame"
    channels_last = True  # the engine keeps conv weights and frames NHWC on CUDA (tensor cores)

    def __init__(
        self,
        weights: str | None = "IMAGENET1K_V1",
        on_missing_weights: str = "error",
        frozen_blocks: int = 0,
        width_mult: float = 1.0,
        batch_norm: bool = False,
        pool: int = 7,
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features, channels, self.weights_used = build_vgg16_features(
            weights=weights,
            on_missing_weights=on_missing_weights,
            width_mult=width_mult,
            frozen_blocks=frozen_blocks,
            batch_norm=batch_norm,
        )
        self.pool = SpatialPool(pool)  # deterministic on CUDA for pool 1 or a 7x7 map
        self.head = DualHead(channels * pool * pool, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fmap = self.features(batch["x"])
        out = self.head(self.pool(fmap).flatten(1))
        out["embedding"] = fmap.mean((2, 3)) if self.pool.size != 1 else out["embedding"]
        return out
