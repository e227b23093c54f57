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

from avemo.audio import aligned

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
    lag_min = max(2, math.floor(rate / F0_MAX_HZ))
    lag_max = min(win // 2, math.ceil(rate / F0_MIN_HZ))
    # Only lags up to lag_max + 1 are ever read (lag_max <= win // 2, so i + 1 < win below).
    r = torch.fft.irfft(_power(torch.fft.rfft(frames, n_fft)), n_fft)[:, : lag_max + 2]
    r = r / (r[:, :1] + _EPS) / r_w[: lag_max + 2].clamp_min(1e-3)  # undo the window's decay
    lags = torch.arange(lag_min, lag_max + 1, dtype=torch.float32)
    seg = r[:, lag_min : lag_max + 1]
    score = seg - OCTAVE_COST * torch.log2(lags / lag_min)
    best = score.argmax(dim=1)
    peak = seg.gather(1, best[:, None])[:, 0].clamp(0.0, 1.0)
    # Parabolic interpolation around the best lag for sub-sample period accuracy.
    i = (best + lag_min).clamp(1, min(win, r.shape[1]) - 2)
    y0, y1, y2 = r.gather(1, i[:, None] + torch.arange(-1, 2)).T
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


def _deltas(x: torch.Tensor) -> torch.Tensor:
    """``torchaudio.functional.compute_deltas(x, win_length=5)`` along time (dim 1) by slicing.

    Same formula (replicate padding, sum_k k * (x[t+k] - x[t-k]) / 10) without conv1d's
    per-call overhead, which cost more than the rest of the MFCC path.
    """
    p = torch.cat([x[:, :1], x[:, :1], x, x[:, -1:], x[:, -1:]], dim=1)
    t = x.shape[1]
    return (2 * (p[:, 4 : 4 + t] - p[:, :t]) + (p[:, 3 : 3 + t] - p[:, 1 : 1 + t])) / 10


def _vector(
    wave: torch.Tensor,
    rate: int,
    frames: torch.Tensor,
    power: torch.Tensor,
    mel_power: torch.Tensor,
) -> np.ndarray:
    """The 192-D vector from the frames (``T x win``), their power spectra and mel projection."""
    win, hop, n_fft, window, fb, dct = _analysis(rate)
    n_frames = power.shape[0]
    mel_db = 10 * torch.log10(mel_power.clamp_min(_EPS))
    mel_db = torch.maximum(mel_db, mel_db.max() - 80.0)  # AmplitudeToDB's top_db floor
    mfcc = (mel_db @ dct).T  # n_mfcc x T
    cepstra = torch.cat([mfcc, _deltas(mfcc)])  # 80 x T
    c_std, c_mean = torch.std_mean(cepstra, dim=1, correction=0)

    # Zero crossings of frame k from a running count over the zero-padded wave: the same counts
    # as comparing signs inside the T x win frame matrix, at a fraction of the cost.
    pad_left = win // 2
    need = (n_frames - 1) * hop + win
    padded = torch.nn.functional.pad(wave, (pad_left, max(0, need - pad_left - wave.numel())))
    starts = torch.arange(n_frames) * hop
    signs = torch.signbit(padded)
    flips = torch.cat([torch.zeros(1, dtype=torch.int64), (signs[1:] != signs[:-1]).cumsum(0)])
    zcr = (flips[starts + win - 1] - flips[starts]).float() / (win - 1)
    energy_db = 10 * torch.log10(frames.pow(2).mean(dim=1) / window.pow(2).mean() + _EPS)

    freqs = torch.linspace(0, rate / 2, power.shape[1])
    total = power.sum(dim=1)
    centroid = (power @ freqs) / (total + _EPS)
    # Bins whose cumulative power is below 85 %: cum is non-decreasing, so searchsorted counts.
    rolloff_bin = torch.searchsorted(power.cumsum(dim=1), 0.85 * total[:, None])[:, 0]
    rolloff = freqs[rolloff_bin.clamp(max=len(freqs) - 1)]
    flatness = torch.exp(torch.log(power + _EPS).mean(dim=1)) / (power.mean(dim=1) + _EPS)
    mag = power.sqrt()
    mag = mag / (mag.sum(dim=1, keepdim=True) + _EPS)
    flux = torch.cat([torch.zeros(1), (mag[1:] - mag[:-1]).norm(dim=1)])
    f0, voicing = _pitch(wave, rate)

    # Descriptors on the 10 ms grid: their four statistics in four ops, not 4 x 6.
    grid = torch.stack([energy_db, zcr, centroid, rolloff, flatness.clamp(0.0, 1.0), flux])
    g_std, g_mean = torch.std_mean(grid, dim=1, correction=0)
    g = torch.stack([g_mean, g_std, grid.amin(dim=1), grid.amax(dim=1)], dim=1)  # 6 x 4
    desc = torch.cat([g[:1], _stats(f0[f0 > 0])[None], _stats(voicing)[None], g[1:]])
    parts = [c_mean[:N_MFCC], c_std[:N_MFCC], c_mean[N_MFCC:], c_std[N_MFCC:], desc.reshape(-1)]
    vec = torch.cat(parts).numpy().astype(np.float32)
    # Belt and braces: a NaN here would silently poison every model downstream.
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)


@functools.lru_cache(maxsize=8)
def _stft_window(rate: int) -> torch.Tensor:
    """The Hann window centred in ``n_fft`` samples, as torch.stft lays it out."""
    win, _, n_fft, window, _, _ = _analysis(rate)
    left = (n_fft - win) // 2
    return torch.nn.functional.pad(window, (left, n_fft - win - left))


def _stft_frames(padded: torch.Tensor, rate: int, n_frames: int) -> torch.Tensor:
    """``n_frames x n_fft`` frames of a clip padded by ``n_fft // 2`` on each side."""
    _, hop, n_fft, _, _, _ = _analysis(rate)
    return padded.unfold(0, n_fft, hop)[:n_frames]


def _zero_padded(wave: torch.Tensor, rate: int) -> torch.Tensor:
    n_fft = _analysis(rate)[2]
    return torch.nn.functional.pad(wave, (n_fft // 2, n_fft // 2))


def _spectrum(
    wave: torch.Tensor, rate: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-padded frames: ``(frames n_fft wide, 25 ms frames, power, mel power)``.

    Frame k holds the 25 ms Hann window centred on k * 10 ms, laid out as torch.stft does
    (window centred in n_fft samples), so the log-mel path can share these spectra.
    """
    win, hop, n_fft, _, fb, _ = _analysis(rate)
    n_frames = wave.numel() // hop + 1  # same count as torch.stft(center=True)
    wide = _stft_frames(_zero_padded(wave, rate), rate, n_frames)
    left = (n_fft - win) // 2
    power = _power(torch.fft.rfft(wide * _stft_window(rate)))
    return wide, wide[:, left : left + win], power, power @ fb


def utterance_vector(wave: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """The 192-D utterance vector (layout in the module docstring) of a mono waveform."""
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    with torch.inference_mode():
        _, frames, power, mel_power = _spectrum(wave, int(rate))
        return _vector(wave, int(rate), frames, power, mel_power)


def utterance_and_logmel(
    wave: torch.Tensor | np.ndarray, rate: int, n_mels: int, hop_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(utterance_vector(wave), aligned.logmel_sequence(wave, rate, n_mels, hop_s))``.

    With the stage's usual settings (64 mels, 10 ms hop) both come from one STFT: the log-mel
    uses the same Hann frames, except that torch.stft reflect-pads the clip's ends where the
    192-D vector zero-pads, so only the few frames that reach past an end are computed twice.
    """
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    rate = int(rate)
    win, hop, n_fft, _, fb, _ = _analysis(rate)
    n = wave.numel()
    # Shared only where the filterbanks and frames agree (MelSpectrogram's f_max is rate // 2).
    if n_mels != N_MELS_MFCC or round(hop_s * rate) != hop or n < win or rate % 2:
        return utterance_vector(wave, rate), aligned.logmel_sequence(wave, rate, n_mels, hop_s)
    with torch.inference_mode():
        wide, frames, power, mel_power = _spectrum(wave, rate)
        vec = _vector(wave, rate, frames, power, mel_power)  # exactly utterance_vector(wave)
        k = torch.arange(power.shape[0])
        edge = k[(k * hop < win // 2) | (k * hop + (win - win // 2) > n)]
        reflected = torch.nn.functional.pad(wave[None], (n_fft // 2, n_fft // 2), mode="reflect")
        edge_frames = reflected[0].unfold(0, n_fft, hop)[edge]
        mel_log = mel_power.clone()  # = torchaudio's MelSpectrogram, up to rounding
        mel_log[edge] = _power(torch.fft.rfft(edge_frames * _stft_window(rate))) @ fb
        logmel = torch.log(mel_log + aligned.LOG_EPS).numpy()
    return vec, logmel
