"""Build registered models (avemo.registry owns names, kinds and factories; this adds torch)."""

from __future__ import annotations

from typing import Any

from torch import nn

from avemo import registry
from avemo.errors import ConfigError, TrainingError
from avemo.registry import ModelEntry, get

ModelSpec = ModelEntry  # the entry describes a model; kept under the models package's old name

# The per-stream models (visual and audio), in registration order.
MODELS: dict[str, ModelEntry] = {
    n: registry.MODELS[n] for n in registry.names(registry.STREAM_KINDS)
}


def build_model(name: str, *kinds: str, **params: Any) -> nn.Module:
    """Instantiate registered model ``name`` (of one of ``kinds``, default: the streams) with
    ``params``; sets ``model.model_name``."""
    kinds = kinds or registry.STREAM_KINDS
    try:
        entry = get(name)
    except ConfigError as exc:
        raise TrainingError(f"{exc}. Fix train.models / fusion.models in config.yaml") from exc
    if entry.kind not in kinds:
        raise TrainingError(
            f"{name!r} is a {entry.kind} model, not one of {', '.join(kinds)}; "
            f"registered {'/'.join(kinds)} models: {', '.join(registry.names(kinds))}"
        )
    try:
        model = entry.load()(**params)
    except TypeError as exc:  # wrong parameter names from config
        raise TrainingError(
            f"bad parameters for model {name!r}: {exc}. Fix its params in config.yaml"
        ) from exc
    model.model_name = name
    return model
