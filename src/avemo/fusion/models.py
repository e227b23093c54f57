"""Early-fusion models (input kind ``fusion``): the study's failing concatenation and its fixes.

All share the dual head and the engine. Each standardises each modality with train statistics
kept in its state dict (``set_input_stats``; the engine calls it with the train split's
``FusionDataset.feature_stats()``). A missing modality (no audio for a clip, a frame without
its window, or the ablations) enters as zeros *after* standardisation, i.e. the train mean, and
is excluded from every masked pooling and attention.

What each reads (utterance vectors or aligned sequences) is its registry entry's
``fusion_inputs`` (avemo.registry).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from avemo.models.audio_mlp import InputStandardizer
from avemo.models.heads import DualHead
from avemo.models.masking import masked_mean

Stats = dict[str, tuple[np.ndarray, np.ndarray]]


def _mlp(in_dim: int, width: int, layers: int, dropout: float) -> tuple[nn.Module, int]:
    """``layers`` × (Linear, LayerNorm, GELU, Dropout); LayerNorm never mixes batch items."""
    blocks: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(d, width), nn.LayerNorm(width), nn.GELU()]
        if dropout > 0:  # a no-op Dropout still costs a kernel call per step
            blocks.append(nn.Dropout(dropout))
        d = width
    return nn.Sequential(*blocks), d


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``x`` [B,T,D] over valid steps; 0 for an item without any valid step."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    return torch.where(mask.any(1, keepdim=True), filled, torch.zeros_like(filled))


class _Fusion(nn.Module):
    input_kind = "fusion"

    def __init__(self, video_dim: int, audio_dim: int, scaling: bool = True) -> None:
        super().__init__()
        # The diagnosis' scaling factor: off keeps the identity, unclipped (the study
        # concatenated raw features of very different scales).
        self.norm_v = InputStandardizer(video_dim, clamp=scaling)
        self.norm_a = InputStandardizer(audio_dim, clamp=scaling)
        self.scaling = scaling

    def set_input_stats(self, stats: Stats) -> None:
        if not self.scaling:
            return
        self.norm_v.set_stats(*stats["video"])
        self.norm_a.set_stats(*stats["audio"])

    def _utterance(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.norm_v(batch["video_utt"]) * batch["video_present"].unsqueeze(-1)
        a = self.norm_a(batch["audio_utt"]) * batch["audio_present"].unsqueeze(-1)
        return v, a


class ConcatMisaligned(_Fusion):
    """The study's setup: [sparse-frame 100-D video embedding ; 192-D whole-clip audio] -> MLP."""

    def __init__(
        self,
        video_dim: int = 100,
        audio_dim: int = 192,
        width: int = 256,
        layers: int = 2,
        hidden: int = 64,
        dropout: float = 0.3,
        scaling: bool = True,
    ) -> None:
        super().__init__(video_dim, audio_dim, scaling)
        self.body, d = _mlp(video_dim + audio_dim, width, layers, dropout)
        self.head = DualHead(d, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v, a = self._utterance(batch)
        return self.head(self.body(torch.cat([v, a], dim=-1)))


class Gated(_Fusion):
    """A learned per-utterance scalar gate g = sigmoid(W[v;a]) mixing g·v + (1-g)·a.

    Reads the study's utterance inputs, so against ``concat_misaligned`` only the fusion rule
    changes. The gate is forced to 1 (video only) when a clip has no audio, to 0 when it has
    no video, so a missing modality cannot leak its placeholder. ``out["gate"]`` is g.
    """

    def __init__(
        self,
        video_dim: int = 100,
        audio_dim: int = 192,
        d: int = 128,
        width: int = 128,
        layers: int = 1,
        hidden: int = 64,
        dropout: float = 0.3,
        scaling: bool = True,
    ) -> None:
        super().__init__(video_dim, audio_dim, scaling)
        self.proj_v, _ = _mlp(video_dim, d, 1, dropout)
        self.proj_a, _ = _mlp(audio_dim, d, 1, dropout)
        self.gate = nn.Linear(2 * d, 1)
        self.body, out = _mlp(d, width, layers, dropout)
        self.head = DualHead(out, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v, a = self._utterance(batch)
        pv, pa = self.proj_v(v), self.proj_a(a)
        g = torch.sigmoid(self.gate(torch.cat([pv, pa], dim=-1)))
        has_v = batch["video_present"].unsqueeze(-1)
        has_a = batch["audio_present"].unsqueeze(-1)
        g = torch.where(has_a, g, torch.ones_like(g))
        g = torch.where(has_v | ~has_a, g, torch.zeros_like(g))
        out = self.head(self.body(g * pv + (1.0 - g) * pa))
        out["gate"] = g.squeeze(-1)
        return out


class _Aligned(_Fusion):
    """Per-step video embeddings and the audio windows at the same timestamps.

    ``activity_dim`` > 0: the last columns of ``video_seq`` are the frame's activity
    (diagnosis factor ``activity=on``, avemo.fusion.inputs)."""

    def __init__(self, video_dim: int, window_dim: int, d: int, dropout: float,
                 scaling: bool = True, activity_dim: int = 0) -> None:
        super().__init__(video_dim, window_dim, scaling)
        if not 0 <= activity_dim < video_dim:
            raise ValueError(f"activity_dim must be in [0, {video_dim}), got {activity_dim}")
        self.activity_dim = activity_dim
        # Per-step encoders carry no dropout: on [B,T,d] it was the largest single cost of an
        # epoch on CPU; dropout acts after pooling instead.
        self.proj_v, _ = _mlp(video_dim, d, 1, 0.0)
        # The small window encoder shared by every step of every clip (the windows arrive
        # time-pooled, see avemo.fusion.inputs.pool_windows, so one layer suffices).
        self.enc_a, _ = _mlp(window_dim, d, 1, 0.0)

    def _steps(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        vm = batch["video_mask"].unsqueeze(-1)
        am = batch["audio_mask"].unsqueeze(-1)
        v = self.proj_v(self.norm_v(batch["video_seq"]) * vm) * vm
        a = self.enc_a(self.norm_a(batch["audio_win"]) * am) * am
        return v, a


class ConcatAligned(_Aligned):
    """The frames pick the moments, the audio at those moments joins the video.

    Each step's audio window gets a weight scored from its own frame, softmax over the clip's
    steps that have both: from the frame's activity when the input has it (what moves on
    screen: who speaks *when*), else from the frame's embedding. [attended audio ; mean
    audio] -> MLP, concatenated with [mean ; max] of the frame embeddings -> MLP -> dual heads.
    ``score_heads`` independent weightings: with one, whether training found the speaking
    frames depended on the initialisation (planted corpus: aligned clearly above shuffled in 2
    of 6 seeds), with 4 aligned beat shuffled in all 6, with 8 in fewer.

    Why attention and not a per-step concatenation pooled by mean and max (this model's first
    form): on the planted corpus (``make planted``) that form could not single out the one
    step whose window carries the target's voice, and gained nothing from alignment, while
    this form recovers most of what an oracle timing gains. The score reads activity alone
    because, with the 100-D emotion embedding beside it, the scorer fitted the embedding
    instead (measured: a third of the gain). ``out["attention"]`` holds the weights [B,T].
    """

    def __init__(
        self,
        video_dim: int = 100,
        window_dim: int = 320,
        d: int = 64,
        width: int = 96,
        layers: int = 1,
        hidden: int = 64,
        dropout: float = 0.3,
        scaling: bool = True,
        activity_dim: int = 0,
        score_width: int = 32,
        score_heads: int = 4,
    ) -> None:
        super().__init__(video_dim, window_dim, d, dropout, scaling=scaling,
                         activity_dim=activity_dim)
        emb_dim = video_dim - activity_dim
        self.proj_v, _ = _mlp(emb_dim, d, 1, 0.0)
        self.score = nn.Sequential(nn.Linear(activity_dim or d, score_width), nn.GELU(),
                                   nn.Linear(score_width, score_heads))
        self.body_a, out_a = _mlp((score_heads + 1) * d, width, 1, dropout)
        self.body, out = _mlp(out_a + 2 * d, width, layers, dropout)
        self.head = DualHead(out, hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        vmask, amask = batch["video_mask"], batch["audio_mask"]
        vm, am = vmask.unsqueeze(-1), amask.unsqueeze(-1)
        x = self.norm_v(batch["video_seq"]) * vm
        emb_dim = x.shape[-1] - self.activity_dim
        v = self.proj_v(x[..., :emb_dim]) * vm
        a = self.enc_a(self.norm_a(batch["audio_win"]) * am) * am
        both = vmask & amask
        logits = self.score(x[..., emb_dim:] if self.activity_dim else v)  # [B,T,H]
        w = torch.softmax(logits.float().masked_fill(~both.unsqueeze(-1), float("-inf")), dim=1)
        w = w.nan_to_num(0.0).to(a.dtype)  # a clip without any such step: weights 0
        attended = torch.einsum("bth,btd->bhd", w, a).flatten(1)
        za = self.body_a(torch.cat([attended, masked_mean(a, amask)], dim=-1))
        zv = torch.cat([masked_mean(v, vmask), masked_max(v, vmask)], dim=-1)
        out = self.head(self.body(torch.cat([za, zv], dim=-1)))
        out["seq"] = a
        out["attention"] = w
        return out


class TimeEncoding(nn.Module):
    """Sinusoids of the timestamp (periods 0.25 s .. 32 s) -> Linear(d).

    Attention is order-blind; the shared time code is what lets a frame find the audio window
    recorded at the same moment. NaN (padding) times encode as 0 s; they are masked anyway.
    """

    def __init__(self, d: int, n_freq: int = 8) -> None:
        super().__init__()
        periods = torch.logspace(math.log10(0.25), math.log10(32.0), n_freq)
        self.register_buffer("omega", 2 * math.pi / periods, persistent=False)
        self.proj = nn.Linear(2 * n_freq, d)

    def forward(self, t_s: torch.Tensor) -> torch.Tensor:
        ang = torch.nan_to_num(t_s, nan=0.0).unsqueeze(-1) * self.omega
        return self.proj(torch.cat([ang.sin(), ang.cos()], dim=-1))


def _attend(
    attn: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor
) -> torch.Tensor:
    """Attention of ``q`` over the valid steps of ``kv``; 0 for items with no valid key (an
    all-masked softmax would be NaN)."""
    has = kv_mask.any(1)
    safe = kv_mask | ~has.unsqueeze(1)  # unmask everything for key-less items, then drop them
    out, _ = attn(q, kv, kv, key_padding_mask=~safe, need_weights=False)
    return out * has.view(-1, 1, 1).to(out.dtype)


class CrossAttention(_Aligned):
    """Video frames attend to audio windows and audio windows to video frames (both ways,
    ``key_padding_mask`` for padding and missing steps), residual + LayerNorm + FFN, masked
    mean pooling of each stream, concatenation -> MLP -> dual heads."""

    # On CUDA nn.MultiheadAttention's backward goes through fused scaled-dot-product attention
    # kernels, which are not guaranteed deterministic: this model trains with warn_only, and
    # its summary (nondeterministic_ops) and the report say so (avemo.training.seed).
    nondeterministic_cuda = "nn.MultiheadAttention backward (scaled dot-product attention)"

    def __init__(
        self,
        video_dim: int = 100,
        window_dim: int = 320,
        d: int = 64,
        heads: int = 4,
        width: int = 128,
        layers: int = 1,
        hidden: int = 64,
        dropout: float = 0.1,
        scaling: bool = True,
        activity_dim: int = 0,
    ) -> None:
        # Frame activity, when present, is part of each frame's projected input.
        super().__init__(video_dim, window_dim, d, dropout, scaling=scaling,
                         activity_dim=activity_dim)
        self.time = TimeEncoding(d)
        self.v2a = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.a2v = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.ModuleList([nn.LayerNorm(d), nn.LayerNorm(d)])
        self.ffn = nn.ModuleList(
            [nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d)) for _ in "va"]
        )
        self.norm2 = nn.ModuleList([nn.LayerNorm(d), nn.LayerNorm(d)])
        self.drop = nn.Dropout(dropout)
        self.body, out = _mlp(2 * d, width, layers, dropout)
        self.head = DualHead(out, hidden, dropout)

    def _block(self, i: int, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.norm1[i](x + self.drop(attended))
        return self.norm2[i](x + self.drop(self.ffn[i](x)))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v, a = self._steps(batch)
        tc = self.time(batch["t_s"])
        v, a = v + tc, a + tc
        vm, am = batch["video_mask"], batch["audio_mask"]
        v2 = self._block(0, v, _attend(self.v2a, v, a, am))
        a2 = self._block(1, a, _attend(self.a2v, a, v, vm))
        pooled = torch.cat([masked_mean(v2, vm), masked_mean(a2, am)], dim=-1)
        out = self.head(self.body(pooled))
        out["seq"] = v2
        return out

