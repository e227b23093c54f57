"""Audio-visual fusion: the study's misaligned concatenation and the fixes it named.

Early fusion (trained by the one engine): ``concat_misaligned``, ``concat_aligned``,
``cross_attention``, ``gated`` (``avemo.fusion.models``, datasets from ``avemo.fusion.inputs``,
stage ``avemo.fusion.stage.train_fusion``). Late fusion of two streams' predictions:
``avemo.fusion.late.late_fusion`` (``weighted`` | ``stacking``).

``train_fusion`` is imported lazily: the model registry may import ``avemo.fusion.models``,
and the stage imports the registry.
"""

from __future__ import annotations

from typing import Any

from avemo.fusion.inputs import FusionDataset, build_fusion_dataset
from avemo.fusion.late import late_fusion
from avemo.fusion.models import (
    ConcatAligned,
    ConcatMisaligned,
    CrossAttention,
    Gated,
)

__all__ = [
    "ConcatAligned",
    "ConcatMisaligned",
    "CrossAttention",
    "FusionDataset",
    "Gated",
    "build_fusion_dataset",
    "build_fusion_model",
    "late_fusion",
    "train_fusion",
]


def __getattr__(name: str) -> Any:
    if name in ("train_fusion", "build_fusion_model"):
        from avemo.fusion import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'avemo.fusion' has no attribute {name!r}")
