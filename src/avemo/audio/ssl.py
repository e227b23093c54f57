"""Optional self-supervised utterance embeddings (wav2vec 2.0 / HuBERT base, 768-D).

Pretrained weights come through torchaudio's bundles, which download them once into the torch
hub cache (``torch.hub.get_dir()/checkpoints/``) and read them from there afterwards, so an
offline machine works once the file has been placed in that folder.
"""

from __future__ import annotations

import functools
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import torch
import torchaudio

from avemo.errors import DataStageError

SSL_MODELS: tuple[str, ...] = ("WAV2VEC2_BASE", "HUBERT_BASE")
DIM = 768
_URL_BASE = "https://download.pytorch.org/torchaudio/models/"


def _bundle(name: str) -> torchaudio.pipelines.Wav2Vec2Bundle:
    if name not in SSL_MODELS:
        raise DataStageError(
            f"unknown SSL model {name!r} (audio.ssl_model); choose one of {', '.join(SSL_MODELS)}"
        )
    return getattr(torchaudio.pipelines, name)


def weights_file(name: str) -> tuple[Path, str]:
    """Where the torch hub cache expects ``name``'s weights, and the URL they come from."""
    path = _bundle(name)._path
    url = path if path.startswith("https") else _URL_BASE + path
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name, url


def load_ssl_model(name: str = "WAV2VEC2_BASE", pretrained: bool = True) -> torch.nn.Module:
    """The bundle's model in eval mode: pretrained weights, or randomly initialised.

    ``pretrained=True`` downloads the weights into the torch hub cache when online and reads
    them from there otherwise; if neither works, raises :class:`DataStageError` naming the
    file to place in the cache. ``pretrained=False`` builds the same architecture with random
    weights (for tests and dry runs).
    """
    bundle = _bundle(name)
    if not pretrained:
        model = torchaudio.models.wav2vec2_model(**bundle._params)
        return model.eval()
    try:
        return bundle.get_model()
    except (urllib.error.URLError, OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        path, url = weights_file(name)
        raise DataStageError(
            f"cannot load the pretrained {name} weights ({type(exc).__name__}: {exc}). "
            f"This machine could not download them and the torch hub cache has no usable "
            f"copy: download {url} elsewhere and place it at {path} "
            f'(or set audio.ssl to "off", or audio.ssl_on_missing to "skip")'
        ) from exc


@functools.lru_cache(maxsize=2)
def cached_ssl_model(name: str, pretrained: bool = True) -> torch.nn.Module:
    """One model per process and name (worker processes load it on first use)."""
    return load_ssl_model(name, pretrained)


def ssl_embedding(model: torch.nn.Module, wave: torch.Tensor | np.ndarray) -> np.ndarray:
    """float32[768]: mean over time of the last transformer layer; ``wave`` mono at 16 kHz."""
    x = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1)
    if x.shape[1] < 400:
        # The convolutional front end needs one 25 ms receptive field to emit a frame.
        x = torch.nn.functional.pad(x, (0, 400 - x.shape[1]))
    with torch.inference_mode():
        layers, _ = model.extract_features(x)  # type: ignore[operator]
        emb = layers[-1][0].mean(dim=0)
    return np.nan_to_num(emb.numpy().astype(np.float32))
