"""Log-mel sequences and log-mel windows aligned to video frame timestamps.

The log-mel spectrogram of a whole clip is computed once (25 ms Hann windows, ``center=True``,
so frame ``k`` is centred on ``k * hop_s`` seconds) as ``log(mel power + 1e-6)``; windows are
slices of it. A window has ``W = 2 * round(window_s / (2 * hop_s)) + 1`` frames (101 for 1 s at
10 ms), odd so that it is centred exactly on the frame nearest the timestamp; the parts of a
window that fall outside the clip are silence: ``LOGMEL_FLOOR`` (the log of zero power,
``log(LOG_EPS)`` ~ -13.8), not 0, which would read as log power 0 (loud sound) exactly where an
event at a clip's start or end sits.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

WIN_S = 0.025
LOG_EPS = 1e-6
# What silence (zero mel power) reads as in these units: the fill outside the clip.
LOGMEL_FLOOR = float(np.log(np.float32(LOG_EPS)))


@functools.lru_cache(maxsize=8)
def _melspec(rate: int, n_mels: int, hop: int) -> torchaudio.transforms.MelSpectrogram:
    win = round(WIN_S * rate)
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=rate,
        n_fft=1 << (win - 1).bit_length(),
        win_length=win,
        hop_length=hop,
        n_mels=n_mels,
        power=2.0,
        center=True,
    )


def window_frames(window_s: float, hop_s: float) -> int:
    """Frames per aligned window (odd)."""
    return 2 * round(window_s / (2 * hop_s)) + 1


def logmel_sequence(
    wave: torch.Tensor | np.ndarray, rate: int, n_mels: int = 64, hop_s: float = 0.01
) -> np.ndarray:
    """float32 ``T x n_mels`` log-mel spectrogram of a mono waveform, frame k at k*hop_s."""
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    hop = round(hop_s * rate)
    win = round(WIN_S * rate)
    if wave.numel() < win:
        # torch.stft's reflect padding needs more samples than half a window.
        wave = torch.nn.functional.pad(wave, (0, win - wave.numel()))
    with torch.inference_mode():
        mel = _melspec(int(rate), int(n_mels), hop)(wave)  # n_mels x T
        return torch.log(mel + LOG_EPS).T.contiguous().numpy()


def windows_from_logmel(
    logmel: np.ndarray, times: np.ndarray | list[float], window_s: float = 1.0, hop_s: float = 0.01
) -> np.ndarray:
    """float32 ``len(times) x n_mels x W`` windows of a ``T x n_mels`` log-mel sequence."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    n_frames, n_mels = logmel.shape
    w = window_frames(window_s, hop_s)
    half = w // 2
    # Silent margins on both sides make every window a plain slice, however near the edge.
    padded = np.full((n_frames + 2 * half, n_mels), LOGMEL_FLOOR, dtype=np.float32)
    padded[half : half + n_frames] = logmel
    centre = np.rint(times / hop_s).astype(np.int64)
    # A timestamp beyond the padded range (video longer than audio) reads only silence.
    start = np.clip(centre, -w, n_frames + half)  # index of the window start in `padded`
    idx = start[:, None] + np.arange(w)[None, :]
    valid = (idx >= 0) & (idx < padded.shape[0])
    out = padded[np.clip(idx, 0, padded.shape[0] - 1)]  # F x W x n_mels
    out[~valid] = LOGMEL_FLOOR
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def aligned_windows(
    wave: torch.Tensor | np.ndarray,
    rate: int,
    times: np.ndarray | list[float],
    window_s: float = 1.0,
    n_mels: int = 64,
    hop_s: float = 0.01,
) -> np.ndarray:
    """float32 ``len(times) x n_mels x W`` log-mel windows centred on each timestamp (s)."""
    return windows_from_logmel(logmel_sequence(wave, rate, n_mels, hop_s), times, window_s, hop_s)
