"""One QC table for the data stages: per clip, what each stage could make of it.

Columns: split, clip_name, exists, decoded_ok (manifest: readable with a video stream),
manifest_reason, frames_ok, n_frames, face_ratio, frames_reason, audio_ok, audio_reason,
duration_s (container), label_duration_s (CSV end - start), duration_mismatch_s.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .labels import SPLITS
from .manifest import read_manifest

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
    results_dir: str | Path, out_csv: str | Path, frame_set: str = "study"
) -> pd.DataFrame:
    """Join manifest, frames (of ``frame_set``) and audio per-clip status into one CSV."""
    r = Path(results_dir)
    parts = []
    for split in SPLITS:
        parts.append(split_qc(
            read_manifest(r / "manifest" / f"{split}.parquet"),
            pd.read_parquet(r / "frames" / frame_set / split / "clips.parquet"),
            pd.read_parquet(r / "audio" / split / "clips.parquet"),
        ))
    qc = pd.concat(parts, ignore_index=True)
    with atomic_path(out_csv) as tmp:
        qc.to_csv(tmp, index=False)
    return qc
