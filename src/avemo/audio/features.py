"""The study's 192-D utterance-level audio vector.

Frames: 25 ms Hann windows every 10 ms (``center=True`` padding); the pitch track uses 40 ms
windows (60 Hz still fits two periods) every 20 ms.

Composition (``UTTERANCE_FEATURE_NAMES`` spells out all 192 names):

======== ============================================================================
index    content
======== ============================================================================
0:40     mean over time of 40 MFCCs (64 mel bands, dB with an 80 dB floor, DCT-II ortho)
40:80    std over time of the 40 MFCCs
80:120   mean of the 40 MFCC deltas (``torchaudio.functional.compute_deltas``, width 5)
120:160  std of the 40 MFCC deltas
160:192  8 frame descriptors x (mean, std, min, max), descriptor-major, i.e.
         ``160 + 4 * d + s`` with s = 0 mean, 1 std, 2 min, 3 max and d =
         0 ``log_energy`` (frame energy, dB re full scale, floor -100 dB),
         1 ``f0_hz`` (autocorrelation pitch, voiced frames only; 0 when none is voiced),
         2 ``voicing`` (normalised autocorrelation peak, 0..1, all frames),
         3 ``zcr`` (zero crossings per sample),
         4 ``spectral_centroid_hz``, 5 ``spectral_rolloff_hz`` (85 % of power),
         6 ``spectral_flatness`` (geometric / arithmetic mean of power, 0..1),
         7 ``spectral_flux`` (L2 distance of consecutive normalised magnitude spectra)
======== ============================================================================

Std is the population std (defined for a single frame). Silence and very short input (even
zero samples) give finite values: inputs are zero-padded to one analysis window, and every
ratio has an epsilon.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio

N_MFCC = 40
N_MELS_MFCC = 64
WIN_S = 0.025
HOP_S = 0.010
PITCH_WIN_S = 0.040
PITCH_HOP_S = 0.020  # pitch only feeds utterance statistics: a 20 ms grid halves its cost
F0_MIN_HZ = 60.0
F0_MAX_HZ = 500.0
VOICING_THRESHOLD = 0.45  # Praat's default voicing threshold for the autocorrelation peak
SILENCE_DB = -60.0  # frames quieter than this are never voiced
OCTAVE_COST = 0.01  # per octave of lag, favours the shortest of equally good periods (Praat)
DIM = 192

DESCRIPTORS: tuple[str, ...] = (
    "log_energy",
    "f0_hz",
    "voicing",
    "zcr",
    "spectral_centroid_hz",
    "spectral_rolloff_hz",
    "spectral_flatness",
    "spectral_flux",
)
STATS: tuple[str, ...] = ("mean", "std", "min", "max")

UTTERANCE_FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"mfcc{i}_mean" for i in range(N_MFCC))
    + tuple(f"mfcc{i}_std" for i in range(N_MFCC))
    + tuple(f"mfcc_delta{i}_mean" for i in range(N_MFCC))
    + tuple(f"mfcc_delta{i}_std" for i in range(N_MFCC))
    + tuple(f"{d}_{s}" for d in DESCRIPTORS for s in STATS)
)
assert len(UTTERANCE_FEATURE_NAMES) == DIM

_EPS = 1e-10


def feature_index(name: str) -> int:
    """Column of a named feature in the 192-D vector (e.g. ``"f0_hz_mean"``)."""
    return UTTERANCE_FEATURE_NAMES.index(name)


@functools.lru_cache(maxsize=8)
def _analysis(rate: int) -> tuple[int, int, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-rate constants: window, hop, n_fft, Hann window, mel filterbank, DCT matrix."""
    win = round(WIN_S * rate)
    hop = round(HOP_S * rate)
    n_fft = 1 << (win - 1).bit_length()
    fb = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, 0.0, rate / 2, N_MELS_MFCC, rate, norm=None, mel_scale="htk"
    )
    dct = torchaudio.functional.create_dct(N_MFCC, N_MELS_MFCC, norm="ortho")
    return win, hop, n_fft, torch.hann_window(win), fb, dct


@functools.lru_cache(maxsize=8)
def _pitch_consts(rate: int) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """Pitch window length, FFT size, Hann window and its normalised autocorrelation."""
    win = round(PITCH_WIN_S * rate)
    # win + longest lag suffices to keep the lags we read free of circular wrap-around.
    n_fft = 1 << (win + math.ceil(rate / F0_MIN_HZ) - 1).bit_length()
    window = torch.hann_window(win)
    r_w = torch.fft.irfft(_power(torch.fft.rfft(window, n_fft)), n_fft)[:win]
    return win, n_fft, window, r_w / r_w[0]


def _power(spec: torch.Tensor) -> torch.Tensor:
    """|X|^2 without the square root that ``abs()`` would take."""
    return spec.real.square() + spec.imag.square()


def _frames(wave: torch.Tensor, win: int, hop: int, n_out: int) -> torch.Tensor:
    """``n_out x win`` frames centred on ``k * hop`` (zero-padded at both ends)."""
    pad_left = win // 2
    need = (n_out - 1) * hop + win
    padded = torch.nn.functional.pad(wave, (pad_left, max(0, need - pad_left - wave.numel())))
    return padded.unfold(0, win, hop)[:n_out]


def _pitch(wave: torch.Tensor, rate: int) -> tuple[torch.Tensor, ...]:
    """Boersma-style autocorrelation pitch: ``(f0_hz, voicing)`` per frame, f0 0 if unvoiced."""
    win, n_fft, window, r_w = _pitch_consts(rate)
    hop = round(PITCH_HOP_S * rate)
    n_frames = max(1, wave.numel() // hop + 1)
    frames = _frames(wave, win, hop, n_frames)
    frames = (frames - frames.mean(dim=1, keepdim=True)) * window
    r = torch.fft.irfft(_power(torch.fft.rfft(frames, n_fft)), n_fft)[:, :win]
    r = r / (r[:, :1] + _EPS) / r_w.clamp_min(1e-3)  # undo the window's own decay
    lag_min = max(2, math.floor(rate / F0_MAX_HZ))
    lag_max = min(win // 2, math.ceil(rate / F0_MIN_HZ))
    lags = torch.arange(lag_min, lag_max + 1, dtype=torch.float32)
    seg = r[:, lag_min : lag_max + 1]
    score = seg - OCTAVE_COST * torch.log2(lags / lag_min)
    best = score.argmax(dim=1)
    peak = seg.gather(1, best[:, None])[:, 0].clamp(0.0, 1.0)
    # Parabolic interpolation around the best lag for sub-sample period accuracy.
    i = (best + lag_min).clamp(1, r.shape[1] - 2)
    y0, y1, y2 = (r.gather(1, (i + k)[:, None])[:, 0] for k in (-1, 0, 1))
    denom = y0 - 2 * y1 + y2
    shift = torch.where(denom.abs() > _EPS, 0.5 * (y0 - y2) / denom, torch.zeros_like(denom))
    lag = i.float() + shift.clamp(-0.5, 0.5)
    energy_db = 10 * torch.log10(frames.pow(2).mean(dim=1) / window.pow(2).mean() + _EPS)
    voiced = (peak >= VOICING_THRESHOLD) & (energy_db > SILENCE_DB)
    f0 = torch.where(voiced, rate / lag, torch.zeros_like(lag))
    return f0, peak


def _stats(x: torch.Tensor) -> torch.Tensor:
    """mean, std, min, max of a 1-D tensor; zeros when it is empty."""
    if x.numel() == 0:
        return torch.zeros(4)
    return torch.stack([x.mean(), x.std(unbiased=False), x.min(), x.max()])


def utterance_vector(wave: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """The 192-D utterance vector (layout in the module docstring) of a mono waveform."""
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    win, hop, n_fft, window, fb, dct = _analysis(int(rate))
    n_frames = max(1, wave.numel() // hop + 1)  # same count as torch.stft(center=True)
    with torch.inference_mode():
        frames = _frames(wave, win, hop, n_frames)
        power = _power(torch.fft.rfft(frames * window, n_fft))  # T x F
        mel_db = 10 * torch.log10((power @ fb).clamp_min(_EPS))
        mel_db = torch.maximum(mel_db, mel_db.max() - 80.0)  # AmplitudeToDB's top_db floor
        mfcc = (mel_db @ dct).T  # n_mfcc x T
        deltas = torchaudio.functional.compute_deltas(mfcc[None], win_length=5)[0]

        freqs = torch.linspace(0, rate / 2, power.shape[1])
        total = power.sum(dim=1)
        energy_db = 10 * torch.log10(frames.pow(2).mean(dim=1) / window.pow(2).mean() + _EPS)
        centroid = (power * freqs).sum(dim=1) / (total + _EPS)
        cum = power.cumsum(dim=1)
        rolloff_bin = (cum < 0.85 * total[:, None]).sum(dim=1).clamp(max=len(freqs) - 1)
        rolloff = freqs[rolloff_bin]
        flatness = torch.exp(torch.log(power + _EPS).mean(dim=1)) / (power.mean(dim=1) + _EPS)
        mag = power.sqrt()
        mag = mag / (mag.sum(dim=1, keepdim=True) + _EPS)
        flux = torch.zeros(n_frames)
        flux[1:] = (mag[1:] - mag[:-1]).norm(dim=1)
        signs = torch.signbit(frames)
        zcr = (signs[:, 1:] != signs[:, :-1]).float().mean(dim=1)
        f0, voicing = _pitch(wave, int(rate))

        parts = [
            mfcc.mean(dim=1),
            mfcc.std(dim=1, unbiased=False),
            deltas.mean(dim=1),
            deltas.std(dim=1, unbiased=False),
            _stats(energy_db),
            _stats(f0[f0 > 0]),
            _stats(voicing),
            _stats(zcr),
            _stats(centroid),
            _stats(rolloff),
            _stats(flatness.clamp(0.0, 1.0)),
            _stats(flux),
        ]
        vec = torch.cat(parts).numpy().astype(np.float32)
    # Belt and braces: a NaN here would silently poison every model downstream.
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)
