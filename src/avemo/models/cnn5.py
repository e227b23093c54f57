"""The study's custom 5-layer CNN baseline on single frames."""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.heads import DualHead
from avemo.models.masking import SpatialPool


class FrameEncoder(nn.Module):
    """Five conv blocks (conv3x3-BN-ReLU-maxpool) + global average pooling -> [N, out_dim]."""

    def __init__(self, base_width: int = 32) -> None:
        super().__init__()
        widths = [base_width, 2 * base_width, 4 * base_width, 8 * base_width, 8 * base_width]
        layers: list[nn.Module] = []
        c_in = 3
        for w in widths:
            layers += [
                nn.Conv2d(c_in, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),  # ceil_mode: small inputs never shrink to 0
            ]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.pool = SpatialPool(1)  # global average, deterministic on CUDA
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


class CNN5(nn.Module):
    """Input kind ``frame``: x [B,3,H,W] normalised float."""

    input_kind = "frame"

    def __init__(self, base_width: int = 32, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.encoder = FrameEncoder(base_width)
        self.head = DualHead(self.encoder.out_dim, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(self.encoder(batch["x"]))
