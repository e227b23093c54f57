"""Model registry: names used unchanged in config.yaml, paths, metrics and reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from avemo.errors import TrainingError
from avemo.models.audio_cnn import AudioCNN
from avemo.models.audio_mlp import AudioMLP
from avemo.models.cnn5 import CNN5
from avemo.models.temporal_video import TemporalVideo
from avemo.models.vgg16 import VGG16
from avemo.models.video_branch import VideoBranch

INPUT_KINDS = ("frame", "frame_seq", "audio_vec", "audio_seq")


@dataclass(frozen=True)
class ModelSpec:
    """What a model needs.

    ``input_kind``: ``frame`` (x [B,3,H,W]; one item per frame, utterance prediction by
    aggregating frame logits per clip), ``frame_seq`` (x [B,T,3,H,W] or [B,T,D] + mask),
    ``audio_vec`` (x [B,192] or [B,88]), ``audio_seq`` (x [B,T,n_mels] + mask).
    """

    name: str
    factory: Callable[..., nn.Module]
    input_kind: str
    description: str


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("cnn5", CNN5, "frame", "custom 5-layer CNN on single frames"),
        ModelSpec("vgg16", VGG16, "frame", "VGG-16 (ImageNet) on single frames, dual FC heads"),
        ModelSpec(
            "video_branch",
            VideoBranch,
            "frame_seq",
            "VGG-16 per-frame features, mean over frames, 100-D fusion embedding",
        ),
        ModelSpec(
            "temporal_video",
            TemporalVideo,
            "frame_seq",
            "frame encoder + GRU/attention over the clip's frames",
        ),
        ModelSpec("audio_mlp", AudioMLP, "audio_vec", "MLP on the utterance audio vector"),
        ModelSpec("audio_cnn", AudioCNN, "audio_seq", "1-D CNN over log-mel/SSL sequences"),
    )
}


def build_model(name: str, **params: Any) -> nn.Module:
    """Instantiate registry model ``name`` with ``params``; sets ``model.model_name``."""
    if name not in MODELS:
        raise TrainingError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}. "
            "Fix train.models in config.yaml"
        )
    try:
        model = MODELS[name].factory(**params)
    except TypeError as exc:  # wrong parameter names from config
        raise TrainingError(
            f"bad parameters for model {name!r}: {exc}. Fix its params in config.yaml"
        ) from exc
    model.model_name = name
    return model
