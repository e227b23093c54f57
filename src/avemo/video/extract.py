"""Frames stage: sampled, cropped frames of every usable clip of one split (formats.md §3).

Shard k holds manifest clips ``[k*shard_clips, (k+1)*shard_clips)``. A worker process handles
one whole shard (decode, crop, write its ``.npy``) and returns only its small index tables, so
memory stays bounded by ``workers`` shards and ``workers=N`` output is byte-identical to
``workers=1`` (both run the same per-shard function).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

import avemo
from avemo.atomic import atomic_dir, write_json
from avemo.errors import ClipError, ConfigError, DataStageError
from avemo.progress import Bar, progress
from avemo.video.decode import DECODERS, set_decode_threads
from avemo.video.face import crop_frame
from avemo.video.sampling import sample_times
from avemo.video.store import (
    CLIPS_FILE,
    INDEX_FILE,
    META_FILE,
    ShardWriter,
    empty_index,
    write_parquet,
)

MANIFEST_COLUMNS: tuple[str, ...] = ("clip_name", "clip_path", "ok", "duration_s")


def read_usable_clips(manifest_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Manifest rows with ``ok`` (in manifest order): ``clip_name, clip_path, duration_s``."""
    path = Path(manifest_path)
    if not path.is_file():
        raise DataStageError(f"{path}: manifest not found; run the manifest stage first")
    try:  # the manifest's own reader (validation) when that module exists
        from avemo.manifest import read_manifest  # type: ignore[import-not-found]
    except ImportError:
        read_manifest = pd.read_parquet
    try:
        df = read_manifest(path)
    except (OSError, ValueError) as e:
        raise DataStageError(f"{path}: unreadable manifest ({e}); rerun the manifest stage") from e
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataStageError(f"{path}: manifest lacks columns {missing}; rerun the manifest stage")
    df = df.loc[df["ok"].astype(bool), ["clip_name", "clip_path", "duration_s"]]
    dup = df["clip_name"][df["clip_name"].duplicated()]
    if len(dup):
        raise DataStageError(f"{path}: duplicate clip_name {dup.iloc[0]!r} among ok rows")
    return df.reset_index(drop=True)


def _process_clip(
    clip_path: str, duration_s: float, p: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Decode + crop one clip: ``(frames, t_s, frame_numbers, face, decoded_duration_s)``."""
    times = sample_times(duration_s, p["policy"], p["every_s"], p["uniform_k"], p["fps"])
    d = DECODERS[p["decoder"]](clip_path, times)
    crops = [crop_frame(f, p["size"], p["face_crop"]) for f in d.frames]
    frames = np.stack([c[0] for c in crops])
    face = np.array([c[1] for c in crops], dtype=bool)
    return frames, d.times, d.frame_numbers, face, d.duration_s


def _extract_shard(
    shard: int,
    clips: list[tuple[str, str, float]],
    out_dir: str,
    p: dict[str, Any],
    on_clip: Callable[[], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write ``shard-{shard}.npy`` for ``clips`` [(name, path, duration)]; return its index and
    clips rows."""
    writer = ShardWriter(out_dir, shard_clips=len(clips) or 1, first_shard=shard,
                         activity_grid=p["activity_grid"])
    rows: list[dict[str, Any]] = []
    for name, path, duration in clips:
        try:
            frames, t_s, numbers, face, dec_dur = _process_clip(path, duration, p)
        except ClipError as e:
            writer.add(name, np.empty((0, 0, 0, 3), np.uint8), np.empty(0))
            rows.append(
                {
                    "clip_name": name,
                    "n_frames": 0,
                    "ok": False,
                    "reason": getattr(e, "reason", "decode_error"),
                    "face_ratio": math.nan,
                    "decoded_duration_s": math.nan,
                }
            )
        else:
            writer.add(name, frames, t_s, numbers, face)
            rows.append(
                {
                    "clip_name": name,
                    "n_frames": len(frames),
                    "ok": True,
                    "reason": "",
                    "face_ratio": float(face.mean()) if p["face_crop"] else math.nan,
                    "decoded_duration_s": float(dec_dur),
                }
            )
        if on_clip is not None:
            on_clip()
    return writer.close(write_index=False), pd.DataFrame(rows)


def _worker_init() -> None:
    # Parallelism comes from processes; OpenCV's and libav's own threads would only
    # oversubscribe the cores.
    cv2.setNumThreads(1)
    set_decode_threads(1)


def _extract_shard_star(args: tuple[Any, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _extract_shard(*args)


def _run_shards(
    tasks: list[tuple[int, list[tuple[str, str, float]], str, dict[str, Any]]],
    workers: int,
    pbar: Bar,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Per-shard results in shard order."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _extract_shard(*task, on_clip=lambda: pbar.update(1))
        return
    # forkserver: fork()ing a parent that may run threads (tqdm, torch, OpenCV) can deadlock;
    # preloading this module keeps the per-worker start cheap.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_worker_init
    ) as pool:
        # map() yields in submission order; a shard's clips are counted when it finishes.
        for task, result in zip(tasks, pool.map(_extract_shard_star, tasks), strict=True):
            pbar.update(len(task[1]))
            yield result


def _check(name: str, ok: bool, value: Any, want: str) -> None:
    if not ok:
        raise ConfigError(f"frames.{name}: must be {want}, got {value!r}")


def extract_frames(
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    policy: str = "every_s",
    every_s: float = 3.0,
    uniform_k: int = 8,
    fps: float = 1.0,
    size: int = 224,
    face_crop: bool = False,
    shard_clips: int = 256,
    workers: int = 1,
    decoder: str = "pyav",
    activity_grid: int = 8,
) -> dict[str, Any]:
    """Frames stage for one split: manifest parquet -> frames directory (formats.md §3).

    Samples each ``ok`` clip at ``sample_times(duration_s, policy, every_s, uniform_k, fps)``,
    takes the nearest decoded frames, crops them square (largest face with ``face_crop``, else
    the centre) at ``size×size``, and writes ``shard-*.npy``, ``index.parquet``,
    ``clips.parquet`` and ``meta.json`` into ``out_dir`` atomically (the directory is replaced
    as a whole). ``workers`` processes each handle whole shards of ``shard_clips`` clips.
    ``decoder`` is ``"pyav"`` or ``"cv2"`` (same output contract). ``activity_grid`` > 0 also
    writes each frame's activity on that grid (``activity-*.npy``, avemo.video.activity). A
    clip that cannot be decoded becomes a ``clips.parquet`` row with ``ok=False`` and a
    reason, never an exception.

    Returns ``{"n_clips", "n_ok", "n_failed", "n_frames", "n_shards", "face_ratio",
    "seconds"}``.
    """
    t0 = time.perf_counter()
    sample_times(1.0, policy, every_s, uniform_k, fps)  # raises ConfigError on bad settings
    _check("size", isinstance(size, int) and size >= 8, size, "an integer >= 8")
    _check(
        "shard_clips",
        isinstance(shard_clips, int) and shard_clips >= 1,
        shard_clips,
        "an integer >= 1",
    )
    _check("workers", isinstance(workers, int) and workers >= 1, workers, "an integer >= 1")
    _check("decoder", decoder in DECODERS, decoder, f"one of {', '.join(DECODERS)}")
    _check("activity_grid", isinstance(activity_grid, int) and 0 <= activity_grid <= size,
           activity_grid, "an integer from 0 (off) to frames.size")
    params: dict[str, Any] = {
        "policy": policy,
        "every_s": float(every_s),
        "uniform_k": int(uniform_k),
        "fps": float(fps),
        "size": int(size),
        "face_crop": bool(face_crop),
        "decoder": decoder,
        "activity_grid": int(activity_grid),
    }
    usable = read_usable_clips(manifest_path)
    records = [
        (str(n), str(p), float(d))
        for n, p, d in zip(
            usable["clip_name"], usable["clip_path"], usable["duration_s"], strict=True
        )
    ]
    index_parts: list[pd.DataFrame] = []
    clip_parts: list[pd.DataFrame] = []
    with atomic_dir(out_dir) as tmp:
        tasks = [
            (k, records[i : i + shard_clips], str(tmp), params)
            for k, i in enumerate(range(0, len(records), shard_clips))
        ]
        with progress(total=len(records), desc=f"frames {Path(out_dir).name}", unit="clip") as pbar:
            for index_part, clips_part in _run_shards(tasks, workers, pbar):
                index_parts.append(index_part)
                clip_parts.append(clips_part)
        index = pd.concat(index_parts, ignore_index=True) if index_parts else empty_index()
        clips = pd.concat(clip_parts, ignore_index=True) if clip_parts else _empty_clips()
        write_parquet(index, tmp / INDEX_FILE)
        write_parquet(clips, tmp / CLIPS_FILE)
        n_ok = int(clips["ok"].sum())
        summary: dict[str, Any] = {
            "n_clips": len(clips),
            "n_ok": n_ok,
            "n_failed": len(clips) - n_ok,
            "n_frames": len(index),
            "n_shards": int(index["shard"].nunique()),
            "face_ratio": float(index["face"].mean()) if face_crop and len(index) else math.nan,
        }
        meta = {
            **params,
            "shard_clips": int(shard_clips),
            "frame_shape": [int(size), int(size), 3],
            "manifest": str(manifest_path),
            "avemo_version": avemo.__version__,
            **summary,
        }
        write_json(tmp / META_FILE, meta)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary


def _empty_clips() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_name": pd.Series([], dtype=object),
            "n_frames": pd.Series([], dtype=np.int64),
            "ok": pd.Series([], dtype=bool),
            "reason": pd.Series([], dtype=object),
            "face_ratio": pd.Series([], dtype=np.float64),
            "decoded_duration_s": pd.Series([], dtype=np.float64),
        }
    )
