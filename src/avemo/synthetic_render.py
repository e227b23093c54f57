"""Render one synthetic clip: a drawn face and a voice-like sound whose content follows a plan.

What a clip plants (``ClipPlan``; the corpus-level design is in ``avemo.synthetic``):

* The **face** shows the expressed emotion persistently, at ``face_level`` of the way from the
  neutral prototype to the emotion's prototype, with slow wobble; a single frame anywhere in the
  clip carries the cue. Its cheeks carry the **sentiment** (rosy: positive, grey-blue shadow:
  negative) at the same level, so sentiment has a cue of its own, not only via emotion.
* The target speaker's **mouth** is closed except while that speaker talks, i.e. inside
  ``[event_start_s, event_end_s]``; there it opens and moves with the voice's syllables.
* The **voice** of the target speaker sounds only inside that interval, with the emotion's vocal
  pattern at ``voice_level`` (pitch level/range, energy, rate, tilt, breathiness, tremor) and a
  sentiment pitch glide (rising: positive, falling: negative). With an event cue a second,
  off-screen speaker (a distractor: another emotion and sentiment, mouth never moves) talks in
  ``[distractor_start_s, distractor_end_s]``, which does not overlap; with ``cue: spread`` the
  target talks over the whole clip and there is no distractor.

Voice energy stays inside its planned interval (the on/off ramps lie within it). All randomness
comes from the clip's own ``numpy`` generator, so a clip is the same whichever worker renders it
and in whatever order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av
import cv2
import numpy as np
from scipy import signal

from avemo.atomic import atomic_path
from avemo.labels import EMOTION_INDEX, EMOTIONS

# Face prototype per emotion (rows in EMOTIONS order). Columns:
# mouth_curve (+ corners up), mouth_open, brow_tilt (+ inner ends up), brow_raise, eye_open,
# sneer (one-sided upper-lip raise). mouth_open only shows while the target speaker talks.
FACE_PARAMS: tuple[str, ...] = (
    "mouth_curve",
    "mouth_open",
    "brow_tilt",
    "brow_raise",
    "eye_open",
    "sneer",
)
FACE_PROTOTYPES = np.array(
    [
        [0.0, 0.10, 0.0, 0.0, 0.55, 0.0],  # neutral
        [1.0, 0.45, 0.0, 0.2, 0.35, 0.0],  # joy
        [0.0, 1.00, 0.1, 1.0, 1.00, 0.0],  # surprise
        [-0.5, 0.35, -1.0, -0.7, 0.70, 0.0],  # anger
        [-0.9, 0.05, 1.0, 0.1, 0.25, 0.0],  # sadness
        [-0.4, 0.25, -0.5, -0.4, 0.30, 1.0],  # disgust
        [-0.3, 0.70, 0.9, 0.9, 0.95, 0.0],  # fear
    ],
    dtype=np.float64,
)

# Voice prototype per emotion. Columns: pitch level (x speaker f0), pitch range (semitones),
# energy, syllable rate (Hz), spectral tilt (higher = duller), breathiness, tremor.
VOICE_PARAMS: tuple[str, ...] = (
    "f0_mult",
    "range_st",
    "energy",
    "rate_hz",
    "tilt",
    "breath",
    "tremor",
)
VOICE_PROTOTYPES = np.array(
    [
        [1.00, 2.0, 0.50, 4.0, 1.2, 0.10, 0.0],  # neutral
        [1.30, 7.0, 0.85, 5.0, 1.0, 0.10, 0.0],  # joy
        [1.50, 10.0, 0.80, 4.0, 1.0, 0.15, 0.0],  # surprise
        [1.15, 4.0, 1.00, 6.0, 0.6, 0.05, 0.0],  # anger
        [0.82, 1.0, 0.30, 2.5, 1.8, 0.35, 0.0],  # sadness
        [0.90, 3.0, 0.55, 3.0, 1.3, 0.30, 0.0],  # disgust
        [1.40, 3.0, 0.45, 6.5, 1.4, 0.40, 1.0],  # fear
    ],
    dtype=np.float64,
)
assert FACE_PROTOTYPES.shape[0] == VOICE_PROTOTYPES.shape[0] == len(EMOTIONS)

# Sentiment cue: sign of the cheek tint and of the pitch glide (neutral: none).
SENTIMENT_SIGN: dict[str, float] = {"neutral": 0.0, "positive": 1.0, "negative": -1.0}
SENTIMENT_GLIDE_ST = 4.0  # semitones over a voiced stretch at level 1 (rising: positive)
SENTIMENT_TILT = 0.3  # spectral tilt change at level 1 (brighter: positive)
SENTIMENT_CHEEK = 0.5  # cheek tint at face level 1 (at 1.0 the tint alone gave sentiment wF1 1.0)
_CHEEK_POSITIVE = np.array([235.0, 95.0, 110.0])  # rosy
_CHEEK_NEGATIVE = np.array([95.0, 110.0, 150.0])  # grey-blue shadow

_CONTROL_RATE = 200  # Hz: prosody parameters are smooth, so compute them coarsely
_SYNTH_RATE = 16_000  # Hz: voice is band-limited to 8 kHz, then resampled to the output rate
_RAMP_S = 0.08  # raised-cosine on/offset of a voice, inside its interval
# Clips longer than this (MELD's few badly cut ones, up to ~305 s, which the manifest's
# max_duration_s keeps out of every stage) repeat a rendering of their first _TILE_S seconds:
# synthesising 279 s in one go took 1.15 GB per worker, and no result reads those clips.
_LONG_S = 60.0
_TILE_S = 20.0


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render and encode one clip file (plain, picklable values)."""

    path: str  # absolute output path
    entropy: int  # corpus seed
    spawn_key: tuple[int, ...]  # (kind, split index, clip index): the clip's private RNG stream
    speaker_key: tuple[int, ...]  # RNG stream of the speaker's appearance and voice
    n_frames: int
    fps: int
    width: int
    height: int
    audio_rate: int
    audio_channels: int
    has_audio: bool
    cue: str  # event | event_start | event_end (short voice event + distractor) | spread
    expressed: str  # emotion shown by face and voice (may differ from the label: label noise)
    sentiment: str  # sentiment shown by cheeks and pitch glide (the label's)
    face_level: float  # 0..1: how far the face moves from neutral towards the emotion
    voice_level: float  # 0..1: the same for the voice
    event_start_s: float  # the target speaker talks (voice on, mouth moving) in this interval
    event_end_s: float
    distractor: str  # "" or the off-screen speaker's emotion
    distractor_sentiment: str
    distractor_speaker_key: tuple[int, ...]
    distractor_start_s: float
    distractor_end_s: float
    distractor_level: float
    nuisance: float  # scale of head motion, lighting, sensor/room noise, wobble (1: default)
    mouth_motion: float = 1.0  # how far the mouth opens while the target talks (1: default)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


@dataclass(frozen=True)
class Speaker:
    """Per-speaker appearance and voice, constant across all of a speaker's clips."""

    skin: np.ndarray  # RGB float
    hair: np.ndarray
    background: np.ndarray
    head_scale: float
    f0: float  # Hz
    formants: tuple[float, float, float]  # Hz


def make_speaker(entropy: int, key: tuple[int, ...]) -> Speaker:
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))
    skin = np.array([rng.uniform(150, 240), rng.uniform(110, 190), rng.uniform(80, 160)])
    hair = rng.uniform(20, 140) * np.array([1.0, rng.uniform(0.6, 0.9), rng.uniform(0.3, 0.7)])
    background = rng.uniform(40, 200, size=3)
    female = rng.random() < 0.5
    f0 = rng.uniform(170, 230) if female else rng.uniform(95, 135)
    formants = (rng.uniform(500, 750), rng.uniform(1200, 1800), rng.uniform(2400, 2900))
    return Speaker(skin, hair, background, float(rng.uniform(0.88, 1.08)), float(f0), formants)


def gate(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """1 inside [start, end] with raised-cosine ramps *inside* it; exactly 0 outside."""
    ramp = max(min(_RAMP_S, (end - start) / 4.0), 1e-6)
    rise = np.clip((t - start) / ramp, 0.0, 1.0)
    fall = np.clip((end - t) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))


def expression(prototypes: np.ndarray, emotion: str, level: float) -> np.ndarray:
    """A prototype row moved ``level`` of the way from neutral to ``emotion``."""
    neutral = prototypes[EMOTION_INDEX["neutral"]]
    return neutral + level * (prototypes[EMOTION_INDEX[emotion]] - neutral)


def _smooth_noise(
    rng: np.random.Generator, n: int, rate: float, sd: float, corr_s: float
) -> np.ndarray:
    """AR(1) noise with standard deviation ``sd`` and correlation time ``corr_s``."""
    a = math.exp(-1.0 / max(corr_s * rate, 1e-6))
    white = rng.standard_normal(n) * sd * math.sqrt(1 - a * a)
    out = signal.lfilter([1.0], [1.0, -a], white)
    return out + rng.standard_normal() * sd * a ** np.arange(n)  # stationary start


def _syllable_envelope(rng: np.random.Generator, rate_hz: np.ndarray, sr: int) -> np.ndarray:
    """Speech-like amplitude: one bump per syllable at the given rate, plus a few pauses."""
    phase = np.cumsum(rate_hz) / sr + rng.uniform(0.0, 1.0)
    env = np.sin(np.pi * (phase % 1.0)) ** 2
    n = rate_hz.size
    t = np.arange(n) / sr
    keep = np.ones(n)
    for _ in range(int(rng.integers(0, 2 + n // (3 * sr)))):
        c, half = rng.uniform(0, n / sr), rng.uniform(0.05, 0.12)
        keep *= 1.0 - gate(t, c - half, c + half)
    return env * keep


# ---------------------------------------------------------------------------------------------
# Audio


def _voice(
    speaker: Speaker,
    emotion: str,
    level: float,
    sentiment: str,
    start: float,
    end: float,
    plan: ClipPlan,
    sr: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One speaker talking in [start, end]: (signal, loudness envelope), both ``n`` samples."""
    n = int(math.ceil(plan.duration_s * sr))
    t = np.arange(n) / sr
    tc = np.arange(int(math.ceil(plan.duration_s * _CONTROL_RATE)) + 2) / _CONTROL_RATE
    params = np.tile(expression(VOICE_PROTOTYPES, emotion, level), (tc.size, 1))
    wobble = np.array([0.05, 0.8, 0.08, 0.4, 0.1, 0.04, 0.0]) * plan.nuisance
    for j, sd in enumerate(wobble):
        if sd:
            params[:, j] += _smooth_noise(rng, tc.size, _CONTROL_RATE, sd, 0.4)
    sign = SENTIMENT_SIGN[sentiment] * level
    params[:, VOICE_PARAMS.index("tilt")] -= SENTIMENT_TILT * sign
    p = {name: np.interp(t, tc, params[:, j]) for j, name in enumerate(VOICE_PARAMS)}

    # Pitch: speaker f0 x level, a smooth random intonation contour spanning +-range/2, the
    # sentiment glide across the voiced stretch, and a 7 Hz tremor for fear.
    contour = np.zeros(n)
    for _ in range(3):
        contour += np.sin(2 * np.pi * rng.uniform(0.4, 2.5) * t + rng.uniform(0, 2 * np.pi))
    contour /= 3.0
    progress = np.clip((t - start) / max(end - start, 1e-6), 0.0, 1.0) - 0.5
    semis = 0.5 * np.maximum(p["range_st"], 0.3) * contour + SENTIMENT_GLIDE_ST * sign * progress
    semis += 0.7 * np.clip(p["tremor"], 0, 1) * np.sin(2 * np.pi * 7.0 * t)
    f0 = speaker.f0 * np.clip(p["f0_mult"], 0.5, 2.5) * 2.0 ** (semis / 12.0)
    f0 *= 1.0 + 0.004 * rng.standard_normal(n)  # jitter
    phase = 2 * np.pi * np.cumsum(f0) / sr

    tilt = np.clip(p["tilt"], 0.3, 2.5)
    source = np.zeros(n)
    for k in range(1, 17):
        amp = np.exp(-tilt * math.log(k)) * (k * f0 < 0.45 * sr)
        source += amp * np.sin(k * phase)
    breath = np.clip(p["breath"], 0.0, 1.0)
    source = source * (1.0 - 0.5 * breath) + 1.5 * breath * rng.standard_normal(n)

    # Loudness: syllables x the speaking interval x emotion energy x a per-voice gain.
    gain = float(np.exp(rng.normal(0.0, 0.25 * plan.nuisance)))
    env = _syllable_envelope(rng, np.clip(p["rate_hz"], 1.0, 9.0), sr) * gate(t, start, end)
    env *= np.clip(p["energy"], 0.05, 1.5) * gain
    voiced = source * env

    # Vowel-ish colour: the source plus three formant resonances of the speaker.
    out = 0.3 * voiced
    for f, g in zip(speaker.formants, (1.0, 0.6, 0.3), strict=True):
        if f < 0.45 * sr:
            b, a = signal.iirpeak(f, Q=f / 120.0, fs=sr)
            out += g * signal.lfilter(b, a, voiced)
    return 0.25 * out, env


def render_audio(
    plan: ClipPlan, speaker: Speaker, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(audio, talk): float32 ``channels x round(duration * audio_rate)`` in [-1, 1], and the
    target speaker's loudness per video frame scaled to 0..1 (drives the mouth)."""
    sr = min(_SYNTH_RATE, plan.audio_rate)
    target, env = _voice(
        speaker,
        plan.expressed,
        plan.voice_level,
        plan.sentiment,
        plan.event_start_s,
        plan.event_end_s,
        plan,
        sr,
        rng,
    )
    out = target
    if plan.distractor:
        other = make_speaker(plan.entropy, plan.distractor_speaker_key)
        out = (
            out
            + _voice(
                other,
                plan.distractor,
                plan.distractor_level,
                plan.distractor_sentiment,
                plan.distractor_start_s,
                plan.distractor_end_s,
                plan,
                sr,
                rng,
            )[0]
        )
    n = out.size

    # Background: brownish room noise at a per-clip level, plus occasional clicks.
    room = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    out = out + (0.001 + rng.uniform(0.001, 0.01) * plan.nuisance) * room
    for c in rng.uniform(0, n, size=int(rng.integers(0, 3))).astype(int):
        click = rng.uniform(0.02, 0.08) * plan.nuisance
        out[c : c + 40] += click * rng.standard_normal(out[c : c + 40].size)

    n_out = int(round(plan.duration_s * plan.audio_rate))
    if plan.audio_rate != sr:
        g = math.gcd(plan.audio_rate, sr)
        out = signal.resample_poly(out, plan.audio_rate // g, sr // g)
    out = np.pad(out, (0, max(0, n_out - out.size)))[:n_out]
    chans = [
        out * (1.0 - 0.12 * c) + 0.002 * rng.standard_normal(n_out)
        for c in range(plan.audio_channels)
    ]
    audio = np.clip(np.stack(chans), -0.99, 0.99).astype(np.float32)

    # Talk per frame: mean loudness over each frame's time span, ~1 at a loud syllable.
    per = max(1, int(round(sr / plan.fps)))
    env = np.pad(env, (0, max(0, plan.n_frames * per - env.size)))[: plan.n_frames * per]
    talk = np.clip(env.reshape(plan.n_frames, per).mean(axis=1) / 0.4, 0.0, 1.0)
    return audio, talk


class Tiled:
    """``np.tile(tile, (1, reps))[:, :n]`` without making it: what ``encode_mp4`` reads of a
    clip's audio (its shape and column slices), taken from the repeated ``tile``."""

    def __init__(self, tile: np.ndarray, n: int) -> None:
        self.tile, self.shape = tile, (tile.shape[0], n)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        start, stop, step = cols.indices(self.shape[1])
        period, a = self.tile.shape[1], start % self.tile.shape[1]
        if step == 1 and a + (stop - start) <= period:  # inside one repeat: a plain slice
            return self.tile[rows, a : a + max(0, stop - start)]
        return self.tile[rows][:, np.arange(start, stop, step) % period]


def clip_audio(
    plan: ClipPlan, speaker: Speaker, rng: np.random.Generator
) -> tuple[np.ndarray | Tiled, np.ndarray]:
    """``render_audio`` as ``render_clip`` encodes it, except that a clip over ``_LONG_S``
    repeats a rendering of its first ``_TILE_S`` seconds (the voices' intervals scaled into
    them), never held at full length."""
    if plan.duration_s <= _LONG_S:
        return render_audio(plan, speaker, rng)
    k = _TILE_S / plan.duration_s
    tile = replace(
        plan, n_frames=int(round(_TILE_S * plan.fps)),
        event_start_s=plan.event_start_s * k, event_end_s=plan.event_end_s * k,
        distractor_start_s=plan.distractor_start_s * k, distractor_end_s=plan.distractor_end_s * k)
    audio, talk = render_audio(tile, speaker, rng)
    n_out = int(round(plan.duration_s * plan.audio_rate))
    return Tiled(audio, n_out), np.resize(talk, plan.n_frames)


# ---------------------------------------------------------------------------------------------
# Video

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel geometry keeps small frames smooth
_ONE = 1 << _SHIFT


def _fx(x: float) -> int:
    return int(round(x * _ONE))


def _draw_face(
    img: np.ndarray,
    spk: Speaker,
    cx: float,
    cy: float,
    scale: float,
    roll: float,
    fp: np.ndarray,
    cheek: float,
) -> None:
    """Draw the head, the expression ``fp`` (FACE_PARAMS order) and the cheek tint ``cheek``
    (-1 negative .. +1 positive) onto ``img`` in place."""
    h, w = img.shape[:2]
    curve, mouth_open, brow_tilt, brow_raise, eye_open, sneer = fp
    ax, ay = 0.27 * w * scale, 0.36 * h * scale
    cos_r, sin_r = math.cos(math.radians(roll)), math.sin(math.radians(roll))

    def pt(dx: float, dy: float) -> tuple[int, int]:  # face coords -> image coords (rolled)
        return _fx(cx + dx * cos_r - dy * sin_r), _fx(cy + dx * sin_r + dy * cos_r)

    def ellipse(dx: float, dy: float, a: float, b: float, color: np.ndarray) -> None:
        cv2.ellipse(
            img, pt(dx, dy), (_fx(a), _fx(b)), roll, 0, 360, color.tolist(), -1, cv2.LINE_AA, _SHIFT
        )

    dark = np.array([25.0, 20.0, 20.0])
    ellipse(0, -0.3 * ay, 1.08 * ax, 0.8 * ay, spk.hair)
    ellipse(0, 0, ax, ay, spk.skin)
    if abs(cheek) > 1e-3:
        tint = _CHEEK_POSITIVE if cheek > 0 else _CHEEK_NEGATIVE
        colour = spk.skin + min(abs(cheek), 1.0) * (tint - spk.skin)
        for s in (-1.0, 1.0):
            ellipse(s * 0.55 * ax, 0.22 * ay, 0.26 * ax, 0.17 * ay, colour)
    thick = max(1, int(round(w / 48)))

    eye_y = -0.15 * ay
    for s in (-1.0, 1.0):
        ex = s * 0.38 * ax
        openness = float(np.clip(eye_open, 0.0, 1.3))
        ellipse(ex, eye_y, 0.2 * ax, max(0.04, openness * 0.13 * ay), np.array([240.0, 240, 235]))
        if openness > 0.12:
            ellipse(ex, eye_y, 0.075 * ax, min(0.075 * ax, openness * 0.1 * ay), dark)
        base = eye_y - 0.2 * ay - float(brow_raise) * 0.09 * ay
        inner = (s * 0.12 * ax, base - float(brow_tilt) * 0.08 * ay)
        outer = (s * 0.6 * ax, base + float(brow_tilt) * 0.03 * ay)
        cv2.line(img, pt(*inner), pt(*outer), (spk.hair * 0.6).tolist(), thick, cv2.LINE_AA, _SHIFT)

    # Mouth: upper lip a parabola bent by curvature (corners up for a smile), one corner
    # lifted by the sneer, lower lip below it by the opening (dark gap between the lips).
    mw = 0.34 * ax
    xs = np.linspace(-1.0, 1.0, 13)
    y_up = (
        0.5 * ay - float(curve) * 0.11 * ay * xs**2 - float(sneer) * 0.08 * ay * np.clip(xs, 0, 1)
    )
    y_lo = y_up + max(float(mouth_open), 0.0) * 0.2 * ay * (1.0 - xs**2) + 0.01 * ay
    poly = [pt(x * mw, y) for x, y in zip(xs, y_up, strict=True)]
    poly += [pt(x * mw, y) for x, y in zip(xs[::-1], y_lo[::-1], strict=True)]
    lips = [120.0, 30.0, 40.0]
    cv2.fillPoly(img, [np.array(poly, dtype=np.int32)], dark.tolist(), cv2.LINE_AA, _SHIFT)
    cv2.polylines(
        img, [np.array(poly[:13], dtype=np.int32)], False, lips, thick, cv2.LINE_AA, _SHIFT
    )
    cv2.polylines(
        img, [np.array(poly[13:], dtype=np.int32)], False, lips, thick, cv2.LINE_AA, _SHIFT
    )


def render_frames(
    plan: ClipPlan, speaker: Speaker, rng: np.random.Generator, talk: np.ndarray
) -> np.ndarray:
    """RGB frames, uint8 ``n_frames x height x width x 3``. ``talk`` is the target speaker's
    loudness at the frame times (0..1): the mouth opens with it while that speaker talks."""
    frames = np.empty((plan.n_frames, plan.height, plan.width, 3), dtype=np.uint8)
    for k, img in enumerate(iter_frames(plan, speaker, rng, talk)):
        frames[k] = img
    return frames


def iter_frames(
    plan: ClipPlan, speaker: Speaker, rng: np.random.Generator, talk: np.ndarray
) -> Iterator[np.ndarray]:
    """``render_frames`` one frame at a time (the same draws in the same order), so a long HD
    clip never holds all its frames in memory (a 60-s 1280x720 clip would need 4 GB). Each
    yielded array is reused for the next frame: copy it to keep it."""
    n, h, w = plan.n_frames, plan.height, plan.width
    t = np.arange(n) / plan.fps
    nu = plan.nuisance
    fp = np.tile(expression(FACE_PROTOTYPES, plan.expressed, plan.face_level), (n, 1))
    for j, sd in enumerate((0.15, 0.0, 0.15, 0.15, 0.08, 0.05)):  # expression wobble
        if sd:
            fp[:, j] += _smooth_noise(rng, n, plan.fps, sd * nu, 0.5)
    # Mouth: closed (0) unless the target talks; then a talking opening plus the emotion's.
    talking = gate(t, plan.event_start_s, plan.event_end_s)
    emo_open = fp[0, 1] - FACE_PROTOTYPES[EMOTION_INDEX["neutral"], 1]
    fp[:, 1] = talking * (0.3 + 0.6 * talk + 0.5 * emo_open) * plan.mouth_motion
    for b in rng.uniform(0, n, size=int(rng.integers(0, 2 + n // (3 * plan.fps)))).astype(int):
        fp[b : b + 3, 4] = 0.02  # blinks: 3 frames of closed eyes
    cheek = SENTIMENT_SIGN[plan.sentiment] * SENTIMENT_CHEEK * plan.face_level

    # Head movement and lighting: slow random drifts, per clip.
    mx = _smooth_noise(rng, n, plan.fps, 0.04 * w * nu, 1.0)
    my = _smooth_noise(rng, n, plan.fps, 0.03 * h * nu, 1.0)
    zoom = 1.0 + _smooth_noise(rng, n, plan.fps, 0.04 * nu, 1.5)
    roll = _smooth_noise(rng, n, plan.fps, 5.0 * nu, 1.0)
    gain = 1.0 + 0.15 * nu * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6.3))
    gain += _smooth_noise(rng, n, plan.fps, 0.05 * nu, 0.3)
    noise_sd = rng.uniform(3.0, 9.0) * nu

    # Background: the speaker's set colour with a vertical gradient and one random panel.
    ramp = np.linspace(0.8, 1.15, h)[:, None, None]
    bg = np.broadcast_to(speaker.background * ramp, (h, w, 3)).copy()
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    bg[y0 : y0 + h // 3, x0 : x0 + w // 4] = rng.uniform(30, 220, size=3)
    bg = bg.astype(np.float32)

    frame = np.empty((h, w, 3), dtype=np.uint8)
    canvas = np.empty((h, w, 3), dtype=np.float32)
    for k in range(n):
        np.copyto(canvas, bg)
        _draw_face(
            canvas,
            speaker,
            w / 2 + mx[k],
            0.55 * h + my[k],
            speaker.head_scale * zoom[k],
            float(roll[k]),
            fp[k],
            cheek,
        )
        canvas *= np.float32(gain[k])
        canvas += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(noise_sd)
        np.clip(canvas, 0, 255, out=canvas)
        frame[...] = canvas
        yield frame


# ---------------------------------------------------------------------------------------------
# Encoding

# x264's macroblock-tree rate control gives different bytes and pixels from run to run on the
# same input (measured with PyAV 18, even with threads=1, first encode in a process most often);
# without mbtree and lookahead the output is reproducible across runs and processes.
X264_OPTIONS: dict[str, str] = {
    "preset": "veryfast",
    "crf": "23",
    "threads": "1",
    "x264-params": "no-mbtree=1:rc-lookahead=0",
}


def encode_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    audio: np.ndarray | Tiled | None,
    fps: int,
    audio_rate: int,
    size: tuple[int, int] | None = None,
) -> None:
    """Write H.264 (libx264, ``X264_OPTIONS``) + AAC (or video only) to ``path`` as mp4.
    ``frames``: an array, or an iterable of ``height x width x 3`` frames with ``size`` =
    (width, height)."""
    if size is None:
        size = (frames.shape[2], frames.shape[1])  # type: ignore[union-attr]
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        v.codec_context.thread_count = 1
        a = None
        if audio is not None:
            layout = "stereo" if audio.shape[0] == 2 else "mono"
            a = out.add_stream(
                "aac", rate=audio_rate, layout=layout, options={"aac_coder": "fast", "b": "64k"}
            )
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None and audio is not None:
            step = 1024  # AAC frame size
            for s in range(0, audio.shape[1], step):
                chunk = np.ascontiguousarray(audio[:, s : s + step])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=a.layout.name)
                af.sample_rate, af.pts = audio_rate, s
                out.mux(a.encode(af))
            out.mux(a.encode(None))


def render_clip(plan: ClipPlan) -> str:
    """Render and atomically write one clip; returns its path. Worker entry point."""
    rng = np.random.default_rng(np.random.SeedSequence(plan.entropy, spawn_key=plan.spawn_key))
    speaker = make_speaker(plan.entropy, plan.speaker_key)
    audio, talk = clip_audio(plan, speaker, rng)
    with atomic_path(plan.path, suffix=".mp4") as tmp:
        # Frames stream into the encoder (drawn after the audio, as render_frames draws them).
        encode_mp4(
            tmp,
            iter_frames(plan, speaker, rng, talk),
            audio if plan.has_audio else None,
            plan.fps,
            plan.audio_rate,
            size=(plan.width, plan.height),
        )
    return str(Path(plan.path))
