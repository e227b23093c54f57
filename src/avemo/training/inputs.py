"""Build the engine's in-memory datasets from the data stages' files.

The one place that turns manifest + frames + audio outputs into datasets, per model input kind:
``frame`` (one item per sampled frame), ``frame_seq`` (a clip's frames as a sequence),
``audio_vec`` (utterance vectors), ``audio_seq`` (log-mel sequences). Labels always come from the
manifest; clips a stage could not use (QC-excluded) are simply absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ..audio.store import AudioStore
from ..errors import DataStageError, TrainingError
from ..labels import EMOTION_INDEX, SENTIMENT_INDEX
from ..manifest import read_manifest, usable
from ..video.store import FrameStore
from .data import (
    ClipSequenceDataset,
    FrameDataset,
    LazyItems,
    SequenceDataset,
    VectorDataset,
)

AUDIO_FEATURES = ("utterance", "egemaps", "logmel", "ssl")


@dataclass(frozen=True)
class SplitFiles:
    """Where one split's stage outputs are."""

    split: str
    manifest: Path
    frames: Path | None = None  # a frames/{set}/{split} directory
    audio: Path | None = None  # an audio/{split} directory
    # Only these clips (cross-fitting trains on some folds of a split); None: every clip.
    clips: frozenset[str] | None = None


def _labels(manifest: Path, clips: frozenset[str] | None = None) -> pd.DataFrame:
    df = usable(read_manifest(manifest))
    if clips is not None:
        df = df[df["clip_name"].isin(clips)]
    return df.set_index("clip_name")[["emotion", "sentiment"]]


def _label_arrays(labels: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = labels.loc[names]
    emo = rows["emotion"].map(EMOTION_INDEX).to_numpy(np.int64)
    sent = rows["sentiment"].map(SENTIMENT_INDEX).to_numpy(np.int64)
    return emo, sent


def _frame_clips(files: SplitFiles, labels: pd.DataFrame) -> tuple[FrameStore, list[str]]:
    if files.frames is None:
        raise DataStageError(f"{files.split}: a frames directory is required for this model")
    store = FrameStore(files.frames)
    names = [n for n in store.clip_names if n in labels.index]
    return store, names


@dataclass(frozen=True)
class _Logmel:
    """Reads one clip's log-mels; a clip without them gets one zero step (picklable)."""

    store: AudioStore
    n_mels: int

    def __call__(self, clip_name: str) -> np.ndarray:
        seq = self.store.logmel(clip_name)
        return seq if len(seq) else np.zeros((1, self.n_mels), np.float32)


def build_dataset(kind: str, files: SplitFiles, *, features: str = "utterance",
                  augment: bool = False, max_len: int | None = None) -> Dataset:
    """The dataset of one split for a model of input kind ``kind``."""
    labels = _labels(files.manifest, files.clips)
    split = files.split
    # Frames and log-mels are read item by item from their stores (LazyItems): an in-memory
    # copy (or a memory map's touched pages) of a split grew each job with the corpus.
    if kind == "frame":
        store, names = _frame_clips(files, labels)
        refs = [(n, k) for n in names for k in range(store.n_frames(n))]
        frame_names = [n for n, _ in refs]
        emo, sent = _label_arrays(labels, frame_names)
        return FrameDataset(LazyItems(store.frame, refs), frame_names, emo, sent,
                            augment=augment, split=split)
    if kind == "frame_seq":
        store, names = _frame_clips(files, labels)
        times = [store.frames_t_s(n) for n in names]
        emo, sent = _label_arrays(labels, names)
        clips = LazyItems(store.clip_frames, names, [len(t) for t in times])
        return ClipSequenceDataset(clips, names, emo, sent, t_s=times, augment=augment,
                                   max_len=max_len, split=split)
    if kind in ("audio_vec", "audio_seq"):
        if files.audio is None:
            raise DataStageError(f"{split}: an audio directory is required for this model")
        store = AudioStore(files.audio)
        keep = [i for i, n in enumerate(store.clip_names) if n in labels.index]
        names = [store.clip_names[i] for i in keep]
        emo, sent = _label_arrays(labels, names)
        if kind == "audio_vec":
            if features not in ("utterance", "egemaps", "ssl"):
                raise TrainingError(f"audio_vec models take utterance|egemaps|ssl features, "
                                    f"not {features!r}: fix train.models.<model>.features")
            x = getattr(store, features)()[keep]
            return VectorDataset(np.asarray(x), names, emo, sent, valid=store.mask[keep],
                                 split=split)
        n_mels = int(store.meta.get("n_mels", 64))
        # A clip without usable audio has an empty sequence: one zero step keeps it scored
        # (missing-modality clips are predicted, not dropped).
        seqs = LazyItems(_Logmel(store, n_mels), names,
                         [max(1, store.logmel_length(n)) for n in names])
        return SequenceDataset(seqs, names, emo, sent, max_len=max_len, split=split)
    raise TrainingError(f"unknown model input kind {kind!r}")
