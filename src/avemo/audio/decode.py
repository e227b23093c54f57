"""Decode a clip's audio stream to a mono float32 waveform at a fixed rate.

PyAV does the decoding (``avemo.audio.mono``: no system ffmpeg, and torchaudio 2.9's ``load``
needs torchcodec); the mono samples are resampled with torchaudio's windowed-sinc resampler.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
import torchaudio

from avemo.audio.mono import AudioDecodeError, decode_mono

__all__ = ["AudioDecodeError", "at_rate", "load_audio", "resample"]


@functools.lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int) -> torchaudio.transforms.Resample:
    # The sinc kernel depends only on the two rates: build it once per process and pair.
    return torchaudio.transforms.Resample(orig_rate, new_rate)


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample a 1-D float waveform (no-op when the rates match)."""
    if orig_rate == new_rate:
        return wave
    with torch.inference_mode():
        return _resampler(int(orig_rate), int(new_rate))(wave)


def at_rate(decoded: tuple[np.ndarray, int], target_rate: int) -> torch.Tensor:
    """``decode_mono``'s ``(samples, rate)`` as a contiguous 1-D tensor at ``target_rate``."""
    samples, rate = decoded
    return resample(torch.from_numpy(samples), rate, target_rate).contiguous()


def load_audio(path: str | os.PathLike[str], target_rate: int = 16000) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream of ``path`` to a mono float32 tensor at ``target_rate``.

    Returns ``(wave, target_rate)`` with ``wave`` 1-D. Raises :class:`AudioDecodeError` (a
    :class:`ClipError`) when the file has no audio stream or its audio cannot be decoded.
    """
    return at_rate(decode_mono(path), target_rate), target_rate
