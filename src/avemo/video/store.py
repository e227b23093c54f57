"""Sharded frame arrays on disk (docs/formats.md section 3): writer and random-access reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.atomic import atomic_path
from avemo.errors import DataStageError
from avemo.npy_io import NpyRows
from avemo.video.activity import frame_activity

INDEX_FILE = "index.parquet"
CLIPS_FILE = "clips.parquet"
META_FILE = "meta.json"
INDEX_COLUMNS: tuple[str, ...] = ("clip_name", "shard", "row", "t_s", "frame_number", "face")
CLIPS_COLUMNS: tuple[str, ...] = (
    "clip_name",
    "n_frames",
    "ok",
    "reason",
    "face_ratio",
    "decoded_duration_s",
)


def shard_file(shard: int) -> str:
    return f"shard-{shard:05d}.npy"


def activity_file(shard: int) -> str:
    """The frame activity rows of a shard (avemo.video.activity), row for row."""
    return f"activity-{shard:05d}.npy"


def empty_index() -> pd.DataFrame:
    """A zero-row index with the on-disk dtypes (so empty outputs still have a schema)."""
    return pd.DataFrame(
        {
            "clip_name": pd.Series([], dtype=object),
            "shard": pd.Series([], dtype=np.int32),
            "row": pd.Series([], dtype=np.int64),
            "t_s": pd.Series([], dtype=np.float32),
            "frame_number": pd.Series([], dtype=np.int64),
            "face": pd.Series([], dtype=bool),
        }
    )


class ShardWriter:
    """Appends whole clips and writes ``shard-NNNNN.npy`` every ``shard_clips`` clips.

    Only the current shard's frames are held in memory, so peak memory is one shard whatever
    the corpus size. Clips with zero frames (failed decodes) count towards ``shard_clips`` so
    that shard k always holds manifest clips ``[k*shard_clips, (k+1)*shard_clips)``: this is what
    lets workers write shards independently and still match a single-process run. A shard
    whose clips all have no frames is not written (the index never refers to it).
    """

    def __init__(
        self, out_dir: str | os.PathLike[str], shard_clips: int, first_shard: int = 0,
        activity_grid: int = 0,
    ) -> None:
        """``activity_grid`` > 0 also writes each shard's frame activity (``activity_file``)."""
        if shard_clips < 1:
            raise ValueError(f"shard_clips must be >= 1, got {shard_clips}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_clips = int(shard_clips)
        self.shard = int(first_shard)
        self._frames: list[np.ndarray] = []
        self._activity: list[np.ndarray] = []
        self.activity_grid = int(activity_grid)
        self._n_clips = 0
        # Index columns as flat lists/arrays; one DataFrame is built at the end (a DataFrame
        # per clip costs more than decoding a short clip).
        self._names: list[str] = []
        self._cols: dict[str, list[np.ndarray]] = {c: [] for c in INDEX_COLUMNS[1:]}
        self._seen: set[str] = set()

    def add(
        self,
        clip_name: str,
        frames: np.ndarray,
        t_s: np.ndarray,
        frame_numbers: np.ndarray | None = None,
        face: np.ndarray | None = None,
    ) -> None:
        """Append one clip's frames (uint8 T×H×W×3, T may be 0) with their timestamps."""
        if clip_name in self._seen:
            raise ValueError(f"clip {clip_name!r} added twice")
        self._seen.add(clip_name)
        n = len(frames)
        if n:
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
                raise ValueError(
                    f"{clip_name}: frames must be uint8 T×H×W×3, got {frames.dtype} {frames.shape}"
                )
            if self._frames and frames.shape[1:] != self._frames[0].shape[1:]:
                raise ValueError(
                    f"{clip_name}: frame shape {frames.shape[1:]} differs from "
                    f"{self._frames[0].shape[1:]} in this shard"
                )
            start = sum(len(f) for f in self._frames)
            self._frames.append(np.ascontiguousarray(frames))
            if self.activity_grid > 0:
                self._activity.append(frame_activity(frames, self.activity_grid))
            self._names.extend([clip_name] * n)
            c = self._cols
            c["shard"].append(np.full(n, self.shard, dtype=np.int32))
            c["row"].append(np.arange(start, start + n, dtype=np.int64))
            c["t_s"].append(np.asarray(t_s, dtype=np.float32).reshape(n))
            c["frame_number"].append(
                np.full(n, -1, np.int64)
                if frame_numbers is None
                else np.asarray(frame_numbers, dtype=np.int64).reshape(n)
            )
            c["face"].append(np.zeros(n, bool) if face is None else np.asarray(face, bool))
        self._n_clips += 1
        if self._n_clips >= self.shard_clips:
            self._flush()

    def _flush(self) -> None:
        if self._frames:
            total = sum(len(f) for f in self._frames)
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                "fortran_order": False,
                "shape": (total, *self._frames[0].shape[1:]),
            }
            # Stream clip by clip into a plain .npy: no second in-memory copy of the shard and
            # no msync (durability comes from the atomic rename, as for every other output).
            with atomic_path(self.out_dir / shard_file(self.shard)) as tmp, open(tmp, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                for f in self._frames:
                    fh.write(memoryview(f).cast("B"))
            if self._activity:
                with atomic_path(self.out_dir / activity_file(self.shard)) as tmp, \
                        open(tmp, "wb") as fh:
                    np.save(fh, np.concatenate(self._activity))
        if self._n_clips:
            self.shard += 1
        self._frames, self._activity, self._n_clips = [], [], 0

    def close(self, write_index: bool = True) -> pd.DataFrame:
        """Write the last (partial) shard; return the index and, by default, write it."""
        self._flush()
        if self._names:
            index = pd.DataFrame(
                {"clip_name": self._names, **{k: np.concatenate(v) for k, v in self._cols.items()}}
            )
        else:
            index = empty_index()
        if write_index:
            write_parquet(index, self.out_dir / INDEX_FILE)
        return index


def write_parquet(df: pd.DataFrame, target: str | os.PathLike[str]) -> None:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)


class FrameStore:
    """Reader of a frames directory: random access to any clip's frames, read from the shards
    with ``pread`` (``avemo.npy_io``: a pass over the corpus leaves no mapped pages in the
    process's memory).

    Picklable (e.g. for DataLoader workers): open shards and maps are reopened lazily.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        hint = "run the frames stage for this split first (avemo.video.extract.extract_frames)"
        if not self.dir.is_dir():
            raise DataStageError(f"{self.dir}: frames directory not found; {hint}")
        for name in (INDEX_FILE, CLIPS_FILE, META_FILE):
            if not (self.dir / name).is_file():
                raise DataStageError(f"{self.dir / name}: missing from the frames output; {hint}")
        try:
            self.index: pd.DataFrame = pd.read_parquet(self.dir / INDEX_FILE)
            self.clips: pd.DataFrame = pd.read_parquet(self.dir / CLIPS_FILE)
            self.meta: dict[str, Any] = json.loads((self.dir / META_FILE).read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise DataStageError(f"{self.dir}: unreadable frames output ({e}); {hint}") from e
        missing = [c for c in INDEX_COLUMNS if c not in self.index.columns]
        if missing:
            raise DataStageError(f"{self.dir / INDEX_FILE}: missing columns {missing}; {hint}")
        # Per clip: (shard, first row in shard, n frames, first position in the index). A clip's
        # frames are one contiguous run of index rows inside one shard.
        self._where: dict[str, tuple[int, int, int, int]] = {}
        names = self.index["clip_name"].astype(str).to_numpy()
        shards = self.index["shard"].to_numpy(np.int64)
        rows = self.index["row"].to_numpy(np.int64)
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if len(names) else []
        ends = np.r_[starts[1:], len(names)] if len(names) else []
        for p0, p1 in zip(starts, ends, strict=True):
            name = str(names[p0])
            if name in self._where or (shards[p0:p1] != shards[p0]).any():
                raise DataStageError(
                    f"{self.dir / INDEX_FILE}: frames of clip {name!r} are not one contiguous "
                    f"run in one shard; {hint}"
                )
            self._where[name] = (int(shards[p0]), int(rows[p0]), int(p1 - p0), int(p0))
        for shard in sorted({s for s, *_ in self._where.values()}):
            if not (self.dir / shard_file(shard)).is_file():
                raise DataStageError(f"{self.dir / shard_file(shard)}: shard missing; {hint}")
        self._t = self.index["t_s"].to_numpy(np.float32)
        self._rows: dict[int, NpyRows] = {}
        self._act: dict[int, NpyRows] = {}

    @property
    def clip_names(self) -> list[str]:
        """Clips that have frames, in storage order."""
        return list(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, clip_name: object) -> bool:
        return clip_name in self._where

    def _shard(self, shard: int) -> NpyRows:
        rows = self._rows.get(shard)
        if rows is None:
            rows = self._rows[shard] = NpyRows(self.dir / shard_file(shard))
        return rows

    def _place(self, clip_name: str) -> tuple[int, int, int, int]:
        try:
            return self._where[clip_name]
        except KeyError:
            raise KeyError(
                f"{clip_name!r}: no frames in {self.dir} (not in the manifest, or its decode "
                f"failed: see {CLIPS_FILE})"
            ) from None

    def n_frames(self, clip_name: str) -> int:
        """How many frames ``clip_name`` has (without reading them)."""
        return self._place(clip_name)[2]

    def frames_t_s(self, clip_name: str) -> np.ndarray:
        """float32 t_s[T] of ``clip_name``'s frames (without reading them)."""
        _, _, n, pos = self._place(clip_name)
        return self._t[pos : pos + n]

    def frames(self, clip_name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(uint8 T×H×W×3 frames, float32 t_s[T])`` of one clip (a fresh copy)."""
        shard, row, n, pos = self._place(clip_name)
        return self._shard(shard).read(row, row + n), self._t[pos : pos + n]

    def clip_frames(self, clip_name: str) -> np.ndarray:
        """Just the frames of ``frames``."""
        return self.frames(clip_name)[0]

    def frame(self, ref: tuple[str, int]) -> np.ndarray:
        """Frame ``k`` (0-based) of clip ``name``, for ``ref = (name, k)``: uint8 H×W×3."""
        name, k = ref
        shard, row, n, _ = self._place(name)
        if not 0 <= k < n:
            raise IndexError(f"{name!r} has {n} frames, not a frame {k}")
        return self._shard(shard).read(row + k, row + k + 1)[0]

    def activity(self, clip_name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(float32 T×grid² frame activity, float32 t_s[T])`` of one clip (its frames'
        rows of ``activity-NNNNN.npy``, avemo.video.activity)."""
        shard, row, n, pos = self._place(clip_name)
        act = self._act.get(shard)
        if act is None:
            path = self.dir / activity_file(shard)
            if not path.is_file():
                raise DataStageError(
                    f"{path}: no frame activity in this frames output (written by an older "
                    "version, or frames.activity_grid is 0); rerun the frames stage")
            act = self._act[shard] = NpyRows(path)
        return act.read(row, row + n).astype(np.float32, copy=False), self._t[pos : pos + n]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_rows"] = {}
        state["_act"] = {}
        return state
