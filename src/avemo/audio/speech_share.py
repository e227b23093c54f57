"""Speech share: which world a corpus resembles, measured before any fusion result is read.

Aligned fusion can only help where speech does not fill the clip: if the target speaks
throughout (the synthetic ``spread`` world; MELD cuts its clips per utterance), a window at
any frame hears the same speech as the whole clip. Per clip this stage measures, with a
pretrained voice-activity detector that runs offline (Silero VAD, whose model ships inside the
``silero-vad`` wheel: TorchScript, torch only):

* ``speech_share``: the share of the clip's 32-ms VAD frames (512 samples at 16 kHz) whose
  speech probability is at least ``threshold``;
* ``activity_speech_r``: how visual activity co-varies with speech over time: Pearson's r,
  over the clip's frames of the aligned frame set, between the VAD probability at each frame's
  timestamp and the frame's activity level (``activity_level``: the largest cell of the
  frame's activity descriptor, ``avemo.video.activity``, in absolute value). Near 0 when
  what moves on screen says nothing about when someone speaks; undefined (NaN) with fewer than
  3 frames or a constant series (e.g. speech at every frame).

Clips are decoded with the project's PyAV decoder (``avemo.audio.mono``), downmixed and
resampled to 16 kHz mono, and run through the VAD in batches of similar length, zero-padded at
the end (the VAD is causal, so padding never changes a real frame's probability).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from avemo.atomic import atomic_path
from avemo.audio.decode import AudioDecodeError, at_rate
from avemo.audio.mono import decode_mono
from avemo.errors import ConfigError
from avemo.manifest import map_ahead, read_manifest, usable
from avemo.progress import progress
from avemo.video.store import FrameStore

VAD_RATE = 16_000
VAD_HOP = 512  # samples per VAD frame at 16 kHz: Silero's chunk (32 ms)
VAD_HOP_S = VAD_HOP / VAD_RATE
# Column order of speech/{split}.parquet (docs/formats.md).
COLUMNS: dict[str, str] = {
    "split": "str",
    "clip_name": "str",
    "audio_s": "float64",
    "speech_share": "float64",
    "mean_prob": "float64",
    "n_frames": "int64",
    "activity_speech_r": "float64",
    "reason": "str",
}
# A batch of waveforms (B × N, float32, 16 kHz) -> speech probabilities (B × ceil(N / 512)).
Vad = Callable[[torch.Tensor], torch.Tensor]


def load_vad() -> Vad:
    """Silero VAD (the TorchScript model packaged in the ``silero-vad`` wheel; no download)."""
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # sets torch's threads to 1 on import

    torch.set_num_threads(threads)
    with warnings.catch_warnings():  # its loader uses a deprecated importlib.resources call
        warnings.simplefilter("ignore", DeprecationWarning)
        model = load_silero_vad()

    def vad(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.audio_forward(batch, VAD_RATE)

    return vad


def speech_probs(waves: Sequence[np.ndarray], vad: Vad, batch_size: int = 32
                 ) -> list[np.ndarray]:
    """Per wave (1-D float32 at 16 kHz), the VAD's speech probability per 512-sample frame
    (``ceil(len / 512)`` values). Waves run in batches of ``batch_size``, sorted by length so
    that little padding is computed."""
    out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(waves)
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    with _one_thread():
        for b in range(0, len(order), batch_size):
            _run_batch(waves, order[b:b + batch_size], vad, out)
    return out


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread: the VAD steps a small network through 32-ms chunks, where more
    threads only wait on each other (three short clips: seconds on two threads, a tenth of a
    second on one), and its numbers then never depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_batch(waves: Sequence[np.ndarray], batch_ids: list[int], vad: Vad,
               out: list[np.ndarray]) -> None:
    idx = [i for i in batch_ids if len(waves[i])]
    if not idx:
        return
    width = math.ceil(max(len(waves[i]) for i in idx) / VAD_HOP) * VAD_HOP
    batch = torch.zeros(len(idx), width)
    for row, i in enumerate(idx):
        batch[row, : len(waves[i])] = torch.as_tensor(waves[i])
    probs = vad(batch).float().numpy()
    for row, i in enumerate(idx):
        out[i] = probs[row, : math.ceil(len(waves[i]) / VAD_HOP)].astype(np.float32)


def prob_at(probs: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """The VAD probability of the frame holding each time ``t_s`` (seconds)."""
    if len(probs) == 0:
        return np.full(len(t_s), np.nan, np.float32)
    k = np.clip(np.floor(np.asarray(t_s, np.float64) / VAD_HOP_S).astype(np.int64), 0,
                len(probs) - 1)
    return probs[k]


def activity_level(activity: np.ndarray) -> np.ndarray:
    """One number per frame from its ``T × grid²`` activity: the largest cell in absolute
    value (a mouth or a brow moves in a few cells; a mean over all cells would drown it).
    No cells (no activity written): zeros, so the correlation is undefined."""
    if activity.size == 0:
        return np.zeros(len(activity), np.float32)
    return np.abs(activity).max(axis=1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r; NaN for fewer than 3 points or a (near-)constant series."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-6 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def clip_measures(probs: np.ndarray, threshold: float, t_s: np.ndarray,
                  activity: np.ndarray) -> dict[str, float]:
    """``speech_share``, ``mean_prob`` and ``activity_speech_r`` of one clip."""
    if len(probs) == 0:
        return {"speech_share": float("nan"), "mean_prob": float("nan"),
                "activity_speech_r": float("nan")}
    return {
        "speech_share": float((probs >= threshold).mean()),
        "mean_prob": float(probs.mean()),
        "activity_speech_r": correlation(prob_at(probs, t_s), activity_level(activity)),
    }


def _decode(path: str) -> np.ndarray | str:
    """16-kHz mono samples of a clip, or the QC reason it has none."""
    try:
        return at_rate(decode_mono(path), VAD_RATE).numpy()
    except AudioDecodeError as exc:
        return exc.reason


def measure_speech(
    manifest_path: str | os.PathLike[str],
    frames_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    threshold: float = 0.5,
    batch_size: int = 32,
    workers: int = 1,
    vad: Vad | None = None,
) -> dict[str, Any]:
    """Stage: every usable clip of one split -> ``out_path`` (``speech/{split}.parquet``, one
    row per clip, ``COLUMNS``; docs/formats.md). ``frames_dir``: the split's frames of the
    aligned frame set (timestamps and activity). ``workers`` threads decode; the VAD runs in
    one thread (``vad``: injected by tests; default Silero). A clip without usable audio gets
    a row with NaN measures and its ``reason``. Returns a summary (clips, medians, seconds)."""
    t0 = time.perf_counter()
    if not 0.0 < float(threshold) < 1.0:
        raise ConfigError(f"speech.threshold must be in (0, 1), got {threshold!r} "
                          "(config.yaml: speech.threshold)")
    if int(batch_size) < 1:
        raise ConfigError(f"speech.batch_size must be >= 1, got {batch_size!r} "
                          "(config.yaml: speech.batch_size)")
    manifest = read_manifest(manifest_path)
    clips = usable(manifest)
    split = str(manifest["split"].iloc[0]) if len(manifest) else ""
    store = FrameStore(frames_dir)
    vad = vad or load_vad()
    rows: list[dict[str, Any]] = []
    names = clips["clip_name"].astype(str).tolist()
    paths = clips["clip_path"].astype(str).tolist()
    # has_audio False: no decode (its reason is the manifest's).
    todo = [p if bool(h) else "" for p, h in zip(paths, clips["has_audio"], strict=True)]
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        decoded = (map_ahead(pool, lambda p: _decode(p) if p else "no_audio", todo,
                             ahead=2 * batch_size) if pool is not None
                   else map(lambda p: _decode(p) if p else "no_audio", todo))
        decoded = progress(decoded, total=len(todo), desc=f"speech {split}", unit="clip",
                           leave=False)
        # Batches of clips in manifest order; inside a batch the VAD sorts by length.
        chunk: list[tuple[str, np.ndarray | str]] = []
        for name, wave in zip(names, decoded, strict=True):
            chunk.append((name, wave))
            if len(chunk) == 4 * batch_size:
                rows += _measure_chunk(chunk, split, store, vad, threshold, batch_size)
                chunk = []
        rows += _measure_chunk(chunk, split, store, vad, threshold, batch_size)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col, dtype in COLUMNS.items():
        df[col] = df[col].astype(dtype)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        df.to_parquet(tmp, index=False)
    return {
        "clips": len(df),
        "measured": int(df["speech_share"].notna().sum()),
        "median_speech_share": float(df["speech_share"].median()) if len(df) else None,
        "median_activity_speech_r": (float(df["activity_speech_r"].median())
                                     if df["activity_speech_r"].notna().any() else None),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _measure_chunk(chunk: list[tuple[str, np.ndarray | str]], split: str, store: FrameStore,
                   vad: Vad, threshold: float, batch_size: int) -> list[dict[str, Any]]:
    waves = [w for _, w in chunk if not isinstance(w, str)]
    probs = iter(speech_probs(waves, vad, batch_size))
    rows = []
    # frames.activity_grid 0 writes no activity: r is then undefined (NaN), the share is not.
    with_activity = int(store.meta.get("activity_grid", 0)) > 0
    for name, wave in chunk:
        if name in store and with_activity:
            activity, t_s = store.activity(name)
        elif name in store:
            t_s = store.frames_t_s(name)
            activity = np.zeros((len(t_s), 0), np.float32)
        else:
            activity, t_s = np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        if isinstance(wave, str):
            rows.append({"split": split, "clip_name": name, "audio_s": float("nan"),
                         **clip_measures(np.zeros(0, np.float32), threshold, t_s, activity),
                         "n_frames": len(t_s), "reason": wave})
            continue
        rows.append({"split": split, "clip_name": name, "audio_s": len(wave) / VAD_RATE,
                     **clip_measures(next(probs), threshold, t_s, activity),
                     "n_frames": len(t_s), "reason": ""})
    return rows
