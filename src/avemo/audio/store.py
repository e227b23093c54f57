"""Reader of an audio features directory (docs/formats.md section 4)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.errors import DataStageError
from avemo.npy_io import NpyRows

CLIPS_FILE = "clips.parquet"
UTTERANCE_FILE = "utterance.npy"
EGEMAPS_FILE = "egemaps.npy"
ALIGNED_FILE = "aligned.npy"
ALIGNED_INDEX_FILE = "aligned_index.parquet"
LOGMEL_FILE = "logmel.npy"
LOGMEL_INDEX_FILE = "logmel_index.parquet"
SSL_FILE = "ssl.npy"
SSL_INDEX_FILE = "ssl_index.parquet"
META_FILE = "meta.json"
CLIPS_COLUMNS: tuple[str, ...] = (
    "clip_name",
    "ok",
    "reason",
    "has_audio",
    "silent",
    "duration_s",
    "mask",
)
REQUIRED: tuple[str, ...] = (
    CLIPS_FILE,
    UTTERANCE_FILE,
    ALIGNED_FILE,
    ALIGNED_INDEX_FILE,
    LOGMEL_FILE,
    LOGMEL_INDEX_FILE,
    META_FILE,
)
_HINT = "run the audio stage for this split (avemo.audio.extract.extract_audio)"


class AudioStore:
    """Random access to one split's audio features; arrays are opened as read-only memmaps.

    Rows of ``utterance()``, ``egemaps()`` and ``ssl()`` follow ``clips``; rows of
    ``aligned()`` follow ``aligned_index`` (= the frames index order).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        if not self.dir.is_dir():
            raise DataStageError(f"{self.dir}: audio features directory not found; {_HINT}")
        for name in REQUIRED:
            if not (self.dir / name).is_file():
                raise DataStageError(f"{self.dir / name}: missing from the audio output; {_HINT}")
        try:
            self.clips: pd.DataFrame = pd.read_parquet(self.dir / CLIPS_FILE)
            self.aligned_index: pd.DataFrame = pd.read_parquet(self.dir / ALIGNED_INDEX_FILE)
            self._logmel_index = pd.read_parquet(self.dir / LOGMEL_INDEX_FILE)
            self.meta: dict[str, Any] = json.loads((self.dir / META_FILE).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise DataStageError(f"{self.dir}: unreadable audio output ({exc}); {_HINT}") from exc
        missing = [c for c in CLIPS_COLUMNS if c not in self.clips.columns]
        if missing:
            raise DataStageError(f"{self.dir / CLIPS_FILE}: missing columns {missing}; {_HINT}")
        names = self.clips["clip_name"].astype(str)
        self._row: dict[str, int] = {n: i for i, n in enumerate(names)}
        self._span: dict[str, tuple[int, int]] = {
            str(n): (int(s), int(k))
            for n, s, k in self._logmel_index[["clip_name", "start", "length"]].itertuples(
                index=False
            )
        }
        self._mm: dict[str, np.ndarray] = {}
        self._logmel: NpyRows | None = None

    def _array(self, name: str, what: str) -> np.ndarray:
        mm = self._mm.get(name)
        if mm is None:
            path = self.dir / name
            if not path.is_file():
                raise DataStageError(
                    f"{path}: no {what} in this audio output; enable it in the audio stage's "
                    f"configuration and rerun it"
                )
            mm = self._mm[name] = np.load(path, mmap_mode="r")
        return mm

    @property
    def clip_names(self) -> list[str]:
        return list(self._row)

    @property
    def mask(self) -> np.ndarray:
        """bool[N]: True where the clip's audio features are real (not zeros)."""
        return self.clips["mask"].to_numpy(bool)

    def row(self, clip_name: str) -> int:
        """Row of ``clip_name`` in ``clips`` and in the per-clip arrays."""
        try:
            return self._row[clip_name]
        except KeyError:
            raise KeyError(f"{clip_name!r}: not in {self.dir / CLIPS_FILE}") from None

    def utterance(self) -> np.ndarray:
        """float32 ``N x 192`` utterance vectors (memmap)."""
        return self._array(UTTERANCE_FILE, "utterance vectors")

    def egemaps(self) -> np.ndarray:
        """float32 ``N x 88`` eGeMAPSv02 functionals (memmap)."""
        return self._array(EGEMAPS_FILE, "eGeMAPS features (audio.egemaps)")

    def aligned(self) -> np.ndarray:
        """float32 ``F x n_mels x W`` log-mel windows, one per sampled video frame (memmap)."""
        return self._array(ALIGNED_FILE, "aligned windows")

    def ssl(self) -> np.ndarray:
        """float32 ``N x 768`` self-supervised embeddings (memmap)."""
        return self._array(SSL_FILE, "SSL embeddings (audio.ssl)")

    def logmel_length(self, clip_name: str) -> int:
        """``T`` of ``logmel(clip_name)``, without reading it."""
        self.row(clip_name)
        return self._span[clip_name][1]

    def logmel(self, clip_name: str) -> np.ndarray:
        """float16 ``T x n_mels`` log-mel sequence of one clip (``T`` = 0 when masked), a fresh
        copy read with ``pread`` (``avemo.npy_io``: no mapped pages stay behind)."""
        self.row(clip_name)
        start, length = self._span[clip_name]
        if self._logmel is None:
            path = self.dir / LOGMEL_FILE
            if not path.is_file():
                raise DataStageError(f"{path}: no log-mel sequences in this audio output; {_HINT}")
            self._logmel = NpyRows(path)
        return self._logmel.read(start, start + length)

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for DataLoader workers: memmaps are reopened lazily.
        state = self.__dict__.copy()
        state["_mm"] = {}
        state["_logmel"] = None
        return state
