"""Multi-task models: a shared backbone with an emotion head (7) and a sentiment head (3).

Every model's ``forward(batch) -> {"emotion": [B,7], "sentiment": [B,3], "embedding": [B,D]}``;
sequence models add ``"seq": [B,T,D']`` (per-step features, exported for fusion).
"""

from avemo.models.registry import MODELS, ModelSpec, build_model

__all__ = ["MODELS", "ModelSpec", "build_model"]
