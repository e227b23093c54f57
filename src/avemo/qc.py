"""One QC table for the data stages: per clip, what each stage could make of it.

Columns: split, clip_name, exists, decoded_ok (manifest: readable with a video stream),
manifest_reason, frames_ok, n_frames, face_ratio, frames_reason, audio_ok, audio_reason,
duration_s (container), label_duration_s (CSV end - start), duration_mismatch_s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .audio.store import CLIPS_FILE as AUDIO_CLIPS
from .errors import DataStageError
from .manifest import read_manifest
from .video.store import CLIPS_FILE as FRAMES_CLIPS

PathLike = str | os.PathLike[str]

COLUMNS = [
    "split", "clip_name", "exists", "decoded_ok", "manifest_reason", "frames_ok", "n_frames",
    "face_ratio", "frames_reason", "audio_ok", "audio_reason", "duration_s", "label_duration_s",
    "duration_mismatch_s",
]


def split_qc(manifest: pd.DataFrame, frames_clips: pd.DataFrame,
             audio_clips: pd.DataFrame) -> pd.DataFrame:
    df = manifest[["split", "clip_name", "exists", "ok", "qc_reason", "duration_s",
                   "start_s", "end_s"]].rename(columns={"ok": "decoded_ok",
                                                        "qc_reason": "manifest_reason"})
    fr = frames_clips[["clip_name", "ok", "n_frames", "face_ratio", "reason"]].rename(
        columns={"ok": "frames_ok", "reason": "frames_reason"})
    au = audio_clips[["clip_name", "mask", "reason"]].rename(
        columns={"mask": "audio_ok", "reason": "audio_reason"})
    df = df.merge(fr, on="clip_name", how="left").merge(au, on="clip_name", how="left")
    # Clips excluded by the manifest never reach the later stages.
    df["frames_ok"] = df["frames_ok"].fillna(False).astype(bool)
    df["audio_ok"] = df["audio_ok"].fillna(False).astype(bool)
    df["n_frames"] = df["n_frames"].fillna(0).astype(int)
    excluded = df["decoded_ok"].map({True: "", False: "excluded_by_manifest"})
    for col in ("frames_reason", "audio_reason"):
        df[col] = df[col].where(df[col].notna(), excluded)
    df["label_duration_s"] = (df["end_s"] - df["start_s"]).round(3)
    df["duration_mismatch_s"] = (df["duration_s"] - df["label_duration_s"]).round(3)
    return df[COLUMNS]


def build_qc(
    manifests: Mapping[str, PathLike],
    frames: Mapping[str, PathLike],
    audio: Mapping[str, PathLike],
    out_csv: PathLike,
) -> pd.DataFrame:
    """Join manifest, frames and audio per-clip status into one CSV (splits in ``manifests``
    order).

    ``manifests``: ``{split: manifest/{split}.parquet}``; ``frames``: ``{split:
    frames/{set}/{split}/}`` (one frame set); ``audio``: ``{split: audio/{split}/}``. The three
    must name the same splits.
    """
    if not set(manifests) == set(frames) == set(audio):
        raise DataStageError(
            f"QC needs the same splits for manifests {sorted(manifests)}, frames "
            f"{sorted(frames)} and audio {sorted(audio)}: fix the qc rule's inputs"
        )
    parts = [
        split_qc(
            read_manifest(manifests[split]),
            pd.read_parquet(Path(frames[split]) / FRAMES_CLIPS),
            pd.read_parquet(Path(audio[split]) / AUDIO_CLIPS),
        )
        for split in manifests
    ]
    qc = pd.concat(parts, ignore_index=True)
    with atomic_path(out_csv) as tmp:
        qc.to_csv(tmp, index=False)
    return qc
