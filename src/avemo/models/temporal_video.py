"""Temporal video model: a sequence model over a clip's per-frame embeddings.

Replaces "average the frames" with learned temporal modelling: a small cnn5-style frame encoder
(or precomputed per-frame features), an optional bidirectional GRU, then attention or mean
pooling over valid frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avemo.errors import TrainingError
from avemo.models.cnn5 import FrameEncoder
from avemo.models.heads import DualHead
from avemo.models.masking import AttentionPool, encode_valid_frames, full_mask, masked_mean


class TemporalVideo(nn.Module):
    """Input kind ``frame_seq``: x [B,T,3,H,W] frames or [B,T,in_dim] features, mask [B,T].

    ``temporal``: ``"gru"`` (bidirectional GRU over valid frames) or ``"none"``;
    ``pooling``: ``"attention"`` or ``"mean"`` over valid steps.
    """

    input_kind = "frame_seq"

    def __init__(
        self,
        in_dim: int | None = None,
        base_width: int = 16,
        temporal: str = "gru",
        pooling: str = "attention",
        rnn_hidden: int = 128,
        hidden: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if temporal not in ("gru", "none") or pooling not in ("attention", "mean"):
            raise TrainingError(
                f"temporal_video: temporal must be gru|none and pooling attention|mean, got "
                f"{temporal!r}/{pooling!r}; fix the model params in config.yaml"
            )
        # Frames go through the encoder; precomputed features (in_dim given) skip it.
        self.encoder: nn.Module | None = None if in_dim else FrameEncoder(base_width)
        feat_dim = in_dim if in_dim else self.encoder.out_dim  # type: ignore[union-attr]
        self.gru = (
            nn.GRU(feat_dim, rnn_hidden, batch_first=True, bidirectional=True)
            if temporal == "gru"
            else None
        )
        seq_dim = 2 * rnn_hidden if self.gru is not None else feat_dim
        self.pool = AttentionPool(seq_dim) if pooling == "attention" else None
        self.head = DualHead(seq_dim, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        mask = batch.get("mask")
        mask = full_mask(x) if mask is None else mask
        seq = (encode_valid_frames(self.encoder, x, mask, batch.get("valid_idx"))
               if self.encoder is not None else x)
        if self.gru is not None:
            # Packing keeps padded steps out of the recurrence in both directions. The collate
            # function's lengths stay on the host (the engine's HOST_KEYS): computing them from
            # the mask would read them back from the GPU at every batch.
            lengths = batch.get("lengths")
            if lengths is None or lengths.is_cuda:
                lengths = mask.sum(1).cpu()
            lengths = lengths.clamp_min(1)
            packed = pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.gru(packed)
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        pooled = self.pool(seq, mask) if self.pool is not None else masked_mean(seq, mask)
        out = self.head(pooled)
        out["seq"] = seq * mask.unsqueeze(-1).to(seq.dtype)
        return out
