"""Build fusion datasets from the stage files (manifest, video embeddings, audio outputs).

Two input families, chosen per model (``FusionDataset.inputs``):

- ``utterance`` (the study's setup): the video branch's mean-pooled 100-D embedding over the
  SPARSE frames (one every 3 s) and the 192-D whole-clip audio vector; nothing is aligned.
- ``aligned``: the video branch's per-frame embeddings on a DENSE frame set and, for each of
  those frames, the log-mel window centred on the same timestamp (matched by clip and time,
  not by row order, so a frame whose window is absent is masked, never shifted).

The diagnosis factors (avemo.diagnosis) choose within a family: ``video="dense"`` gives
``utterance`` models the video model's embedding over the dense frames; ``audio="windowed"``
gives them the aligned windows pooled over the clip (masked mean and max) instead of the
192-D vector; ``activity_dir`` (the dense frames output) puts each dense frame's activity
(avemo.video.activity) beside its embedding, pooled like the windows for ``utterance``
models; ``shuffle_seed`` shuffles each clip's windows in time for ``aligned`` models
(the negative control: the same windows, each now beside another moment's frame).

Clips = manifest ``ok`` clips that have a sparse video embedding (the visual baselines score
exactly these, so fusion predictions pair with theirs). A clip without usable audio is kept
and scored with its audio masked; ``FusionDataset.without("audio")`` masks it for every clip.
Scaling statistics are computed here (``feature_stats``, train split only, valid steps only)
and stored by the model (``set_input_stats``), so prediction always uses train statistics.
"""

from __future__ import annotations

import copy
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from avemo.audio.store import ALIGNED_FILE, ALIGNED_INDEX_FILE, AudioStore
from avemo.errors import DataStageError
from avemo.labels import EMOTION_INDEX, SENTIMENT_INDEX
from avemo.manifest import read_manifest, usable
from avemo.npy_io import NpyRows, ScratchArray
from avemo.video.store import FrameStore

PathLike = str | os.PathLike[str]
INPUTS = ("utterance", "aligned")
MODALITIES = ("audio", "video")
# Dense-frame timestamps and aligned-window timestamps come from the same frames index, so they
# agree to float32 precision; anything farther apart is a different frame.
MATCH_TOL_S = 0.02
_POOL_CHUNK = 4096  # aligned steps pooled per call (pool_windows reads 1,024 windows at a time)
_STEP_CHUNK = 1024  # clips per block when a split's step arrays are built or summarised


@dataclass(frozen=True)
class EmbeddingFile:
    """One ``embeddings_{split}.npz`` of the video branch (docs/formats.md section 5)."""

    clip_name: np.ndarray
    emb: np.ndarray
    seq: np.ndarray
    lengths: np.ndarray
    t_s: np.ndarray

    @classmethod
    def read(cls, path: PathLike, seq: bool = True) -> EmbeddingFile:
        """The file's arrays; ``seq=False`` leaves the per-step embeddings unread (an empty
        ``N x 0 x 0`` array): the utterance inputs use only ``emb``, and ``seq`` is the bulk
        of the file (``N x T x D``)."""
        path = Path(path)
        hint = "rerun the video_branch training stage that exports it"
        if not path.is_file():
            raise DataStageError(f"{path}: video embeddings not found; {hint}")
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = ("clip_name", "emb", "seq", "lengths", "t_s") if seq else (
                    "clip_name", "emb", "lengths", "t_s")
                arrays = {k: z[k] for k in keys}
                if not seq:
                    if "seq" not in z.files:  # required all the same: same file, same check
                        raise KeyError("seq")
                    arrays["seq"] = np.zeros((len(arrays["clip_name"]), 0, 0), np.float32)
        except KeyError as exc:
            raise DataStageError(
                f"{path}: lacks key {exc}; fusion needs a sequence model's export "
                f"(clip_name, emb, seq, lengths, t_s); {hint}"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DataStageError(f"{path}: unreadable ({exc}); {hint}") from exc
        n = len(arrays["clip_name"])
        if not (len(arrays["emb"]) == len(arrays["seq"]) == len(arrays["lengths"]) == n):
            raise DataStageError(f"{path}: arrays disagree on the number of clips; {hint}")
        arrays["clip_name"] = arrays["clip_name"].astype(str)
        return cls(**arrays)


def _labels(manifest: PathLike) -> pd.DataFrame:
    df = usable(read_manifest(manifest))
    return df.set_index("clip_name")[["emotion", "sentiment"]]


def _read_aligned(directory: PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """The aligned windows and their index: a full audio output (AudioStore) or a folder with
    just ``aligned.npy`` + ``aligned_index.parquet`` (the dense frame set's windows)."""
    d = Path(directory)
    try:
        store = AudioStore(d)
        return store.aligned(), store.aligned_index
    except DataStageError:
        if not ((d / ALIGNED_FILE).is_file() and (d / ALIGNED_INDEX_FILE).is_file()):
            raise DataStageError(
                f"{d}: needs {ALIGNED_FILE} and {ALIGNED_INDEX_FILE}; run the audio stage's "
                "aligned windows for the dense frame set"
            ) from None
    windows = np.load(d / ALIGNED_FILE, mmap_mode="r")
    index = pd.read_parquet(d / ALIGNED_INDEX_FILE)
    if len(index) != len(windows):
        raise DataStageError(
            f"{d}: {len(windows)} windows but {len(index)} index rows; rerun the audio stage"
        )
    return windows, index


def _pad_rows(values: list[np.ndarray], t_max: int, fill: float) -> np.ndarray:
    out = np.full((len(values), t_max), fill, dtype=np.float32)
    for i, v in enumerate(values):
        out[i, : len(v)] = v[:t_max]
    return out


def pool_windows(windows: np.ndarray, segments: int, chunk: int = 1024,
                 rows: np.ndarray | None = None) -> np.ndarray:
    """``F × n_mels × W`` -> ``F × (n_mels·segments)``: mean over ``segments`` equal time spans.

    A fixed reduction (no statistics) applied alike to every split: it keeps the dense windows
    of a MELD-sized split in memory (20× smaller at W=101, 5 segments) and makes the learned
    window encoder cheap. ``segments`` ≤ 0 keeps all W frames. ``rows`` (increasing): pool
    only those windows, in that order. The raw windows are read ``chunk`` at a time, a
    memory-mapped file's with ``pread``, so neither a copy of the selection nor mapped pages
    (resident memory of the process) grow with the corpus:
    at MELD's size the train split's windows are 2 GB.
    """
    rows = np.arange(len(windows)) if rows is None else np.asarray(rows, dtype=np.int64)
    n_mels, w = windows.shape[1:]
    width = pooled_width(windows, segments)
    out = np.empty((len(rows), width), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        part = rows[s : s + chunk]
        block = np.asarray(_read_rows(windows, part), dtype=np.float32)
        if width == n_mels * w:
            out[s : s + chunk] = block.reshape(len(part), width)
        else:
            pooled = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(block), segments)
            out[s : s + chunk] = pooled.numpy().reshape(len(part), width)
    return out


def pooled_width(windows: np.ndarray, segments: int) -> int:
    """Width of ``pool_windows(windows, segments)``'s rows."""
    n_mels, w = windows.shape[1:]
    return n_mels * w if segments <= 0 or segments >= w else n_mels * segments


def _read_rows(windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``windows[rows]``; for a memory-mapped ``.npy``, the span of those rows read with
    ``pread`` (``avemo.npy_io``), so that no mapped page stays behind."""
    if not isinstance(windows, np.memmap) or windows.filename is None or len(rows) == 0:
        return np.asarray(windows[rows])
    lo, hi = int(rows.min()), int(rows.max()) + 1
    span = NpyRows(windows.filename)
    try:
        return span.read(lo, hi)[rows - lo]
    finally:
        span.close()


def _match_windows(
    names: list[str], t_s: np.ndarray, lengths: np.ndarray, index: pd.DataFrame, tol: float
) -> np.ndarray:
    """Row of the aligned window for each (clip, dense frame), -1 where none is within ``tol``."""
    rows = np.full(t_s.shape, -1, dtype=np.int64)
    step = np.arange(t_s.shape[1])[None, :] < lengths[:, None]
    ci, si = np.nonzero(step)
    if len(ci) == 0 or len(index) == 0:
        return rows
    frames = pd.DataFrame(
        {"clip_name": np.asarray(names)[ci], "t_s": t_s[ci, si].astype(np.float64), "k": ci}
    )
    frames["s"] = si
    win = pd.DataFrame(
        {
            "clip_name": index["clip_name"].astype(str).to_numpy(),
            "t_s": index["t_s"].to_numpy(np.float64),
            "row": np.arange(len(index)),
        }
    )
    m = pd.merge_asof(
        frames.sort_values("t_s"),
        win.sort_values("t_s"),
        on="t_s",
        by="clip_name",
        tolerance=tol,
        direction="nearest",
    )
    ok = m["row"].notna().to_numpy()
    rows[m["k"].to_numpy()[ok], m["s"].to_numpy()[ok]] = m["row"].to_numpy()[ok].astype(np.int64)
    return rows


def _stats(x: np.ndarray, valid: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std in float64 of the rows or steps of ``x`` where ``valid``.

    Two passes over ``chunk`` items at a time: no copy of the valid rows and no float64 copy of
    their deviations, which for the aligned windows of MELD's train split (100 MB) cost 300 MB.
    """
    n = int(valid.sum())
    d = x.shape[-1]
    if n == 0:  # nothing valid: identity scaling
        return np.zeros(d), np.ones(d)
    total, squares = np.zeros(d), np.zeros(d)
    for s in range(0, len(x), chunk):
        total += x[s : s + chunk][valid[s : s + chunk]].sum(0, dtype=np.float64)
    mean = total / n
    for s in range(0, len(x), chunk):
        squares += np.square(x[s : s + chunk][valid[s : s + chunk]] - mean).sum(0)
    return mean, np.sqrt(squares / n)


class FusionDataset(Dataset):
    """One item per clip. Items are indices; ``collate`` gathers a whole batch with one fancy
    index per array (per-item tensors would dominate an epoch of these small models).

    Batch keys: ``emotion``, ``sentiment`` (long [B]), ``clip_name`` (list); ``utterance``
    inputs add ``video_utt`` [B,Dv], ``audio_utt`` [B,Da], ``video_present``,
    ``audio_present`` (bool [B]); ``aligned`` inputs add ``video_seq`` [B,T,Dv], ``audio_win``
    [B,T,Dw], ``video_mask``, ``audio_mask`` (bool [B,T]), ``mask`` (either valid),
    ``lengths``, ``t_s`` [B,T] (NaN padded).

    Provenance for checks: ``video_t_s`` holds the timestamps of the frames behind the video
    input in use (sparse frames for ``utterance``, dense for ``aligned``); ``audio_t_s`` the
    centres of the audio windows used (None = one whole-clip vector).
    """

    def __init__(self, split: str, inputs: str, arrays: dict[str, np.ndarray],
                 activity_dim: int = 0) -> None:
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        self.split = split
        self.inputs = inputs
        self.a = arrays
        # ``aligned``: the last ``activity_dim`` columns of ``video_seq`` are frame activity.
        self.activity_dim = int(activity_dim)
        self.clip_names: np.ndarray = arrays["clip_name"]
        self.emotion_idx: np.ndarray = arrays["emotion"]
        self.sentiment_idx: np.ndarray = arrays["sentiment"]
        if inputs == "utterance":
            self.video_t_s: np.ndarray = arrays["sparse_t_s"]
            self.audio_t_s: np.ndarray | None = None
        else:
            self.video_t_s = arrays["t_s"]
            self.audio_t_s = np.where(arrays["audio_mask"], arrays["audio_t_s"], np.nan)

    def __len__(self) -> int:
        return len(self.clip_names)

    def __getitem__(self, i: int) -> int:
        return int(i)

    @property
    def audio_present(self) -> np.ndarray:
        """bool [N]: the clip has usable audio (AudioStore mask)."""
        return self.a["audio_present"]

    def dims(self) -> dict[str, int]:
        """Input widths, passed to the model constructors."""
        if self.inputs == "utterance":
            return {"video_dim": int(self.a["video_utt"].shape[1]),
                    "audio_dim": int(self.a["audio_utt"].shape[1])}
        return {"video_dim": int(self.a["video_seq"].shape[2]),
                "window_dim": int(self.a["audio_win"].shape[2]),
                "activity_dim": self.activity_dim}

    def feature_stats(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Per-modality (mean, std) over valid rows/steps only; one dict (the engine passes it
        to ``model.set_input_stats``)."""
        a = self.a
        if self.inputs == "utterance":
            return (
                {
                    "video": _stats(a["video_utt"], a["video_present"]),
                    "audio": _stats(a["audio_utt"], a["audio_present"]),
                },
            )
        return (
            {
                "video": _stats(a["video_seq"], a["video_mask"]),
                "audio": _stats(a["audio_win"], a["audio_mask"]),
            },
        )

    def without(self, modality: str) -> FusionDataset:
        """A copy with ``modality`` removed for every clip (zeros, masked): the ablation."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        arrays = copy.copy(self.a)
        if modality == "audio":
            keys = {"audio_utt": "audio_present", "audio_win": "audio_mask"}
        else:
            keys = {"video_utt": "video_present", "video_seq": "video_mask"}
        for feat, mask in keys.items():
            if feat in arrays:
                arrays[feat] = _zeros_like(arrays[feat])
                arrays[mask] = np.zeros_like(arrays[mask])
        return FusionDataset(self.split, self.inputs, arrays, self.activity_dim)

    def collate(self, idx: list[int]) -> dict[str, Any]:
        ix = np.asarray(idx, dtype=np.int64)
        a = self.a
        batch: dict[str, Any] = {
            "emotion": torch.from_numpy(a["emotion"][ix]),
            "sentiment": torch.from_numpy(a["sentiment"][ix]),
            "clip_name": a["clip_name"][ix].tolist(),
            "video_present": torch.from_numpy(a["video_present"][ix]),
            "audio_present": torch.from_numpy(a["audio_present"][ix]),
        }
        if self.inputs == "utterance":
            batch["video_utt"] = torch.from_numpy(a["video_utt"][ix])
            batch["audio_utt"] = torch.from_numpy(a["audio_utt"][ix])
            return batch
        lengths = a["lengths"][ix]
        t = max(int(lengths.max()), 1)  # trim padding to the batch's longest clip
        vm, am = a["video_mask"][ix, :t], a["audio_mask"][ix, :t]
        batch.update(
            video_seq=torch.from_numpy(a["video_seq"][ix, :t]),
            audio_win=torch.from_numpy(a["audio_win"][ix, :t]),
            video_mask=torch.from_numpy(vm),
            audio_mask=torch.from_numpy(am),
            mask=torch.from_numpy(vm | am),
            lengths=torch.from_numpy(lengths),
            t_s=torch.from_numpy(a["t_s"][ix, :t]),
        )
        return batch


def build_fusion_dataset(
    split: str,
    inputs: str,
    manifest: PathLike,
    video_utt: PathLike,
    audio_dir: PathLike,
    *,
    video_dense: PathLike | None = None,
    aligned_dir: PathLike | None = None,
    window_pool: int = 5,
    match_tol_s: float = MATCH_TOL_S,
    video: str | None = None,
    audio: str | None = None,
    shuffle_seed: int | None = None,
    activity_dir: PathLike | None = None,
) -> FusionDataset:
    """The fusion dataset of one split.

    ``video_utt``: the sparse-frame ``embeddings_{split}.npz``; ``audio_dir``: the AudioStore
    folder (utterance vectors and mask); for ``inputs="aligned"`` also ``video_dense`` (the
    dense-frame npz) and ``aligned_dir`` (windows centred on the dense frames), windows pooled
    to ``window_pool`` time segments (``pool_windows``). ``video``/``audio``/``shuffle_seed``:
    the diagnosis factors (module docstring; None: the family's own, sparse/clip for
    ``utterance``, dense/windowed for ``aligned``); ``utterance`` models with
    ``video="dense"`` or ``audio="windowed"`` need ``video_dense`` and ``aligned_dir`` too.
    """
    if inputs not in INPUTS:
        raise DataStageError(f"unknown fusion inputs {inputs!r}; use one of {INPUTS}")
    own = ("sparse", "clip") if inputs == "utterance" else ("dense", "windowed")
    video, audio = video or own[0], audio or own[1]
    if inputs == "aligned" and (video, audio) != ("dense", "windowed"):
        raise DataStageError("aligned fusion reads dense frames and windowed audio")
    labels = _labels(manifest)
    sparse = EmbeddingFile.read(video_utt, seq=False)
    keep = np.isin(sparse.clip_name, labels.index.to_numpy(str))
    names = sparse.clip_name[keep].tolist()
    if not names:
        raise DataStageError(
            f"{split}: no clip of {video_utt} is an ok clip of {manifest}; the video embeddings "
            "and the manifest come from different runs: rerun the video_branch stage"
        )
    rows = labels.loc[names]
    store = AudioStore(audio_dir)
    a_pos = {n: i for i, n in enumerate(store.clip_names)}
    a_row = np.array([a_pos.get(n, -1) for n in names], dtype=np.int64)
    a_present = (a_row >= 0) & store.mask[np.maximum(a_row, 0)]
    utt = np.asarray(store.utterance(), dtype=np.float32)
    arrays: dict[str, np.ndarray] = {
        "clip_name": np.asarray(names, dtype=str),
        "emotion": rows["emotion"].map(EMOTION_INDEX).to_numpy(np.int64),
        "sentiment": rows["sentiment"].map(SENTIMENT_INDEX).to_numpy(np.int64),
        "video_utt": sparse.emb[keep].astype(np.float32),
        "video_present": np.ones(len(names), dtype=bool),
        "audio_utt": np.where(a_present[:, None], utt[np.maximum(a_row, 0)], 0.0).astype(
            np.float32
        ),
        "audio_present": a_present,
        "sparse_t_s": sparse.t_s[keep].astype(np.float32),
    }
    if inputs == "utterance" and (video, audio) == ("sparse", "clip"):
        return FusionDataset(split, inputs, arrays)
    if video_dense is None or aligned_dir is None:
        raise DataStageError(f"{split}: dense video or windowed audio needs video_dense and "
                             "aligned_dir")
    aligned = _aligned_arrays(names, a_present, video_dense, aligned_dir, window_pool,
                              match_tol_s)
    activity_dim = 0
    if activity_dir is not None:
        if video != "dense":
            raise DataStageError("frame activity joins the dense video input (video='dense')")
        act = frame_activity_steps(activity_dir, names, aligned["t_s"], aligned["lengths"],
                                   match_tol_s)
        aligned["video_seq"] = _concat_steps(aligned["video_seq"], act)
        activity_dim = act.shape[2]
        pooled, _ = pooled_windows(act, aligned["video_mask"])
        aligned["video_emb"] = np.concatenate([aligned["video_emb"], pooled], axis=1)
    if inputs == "aligned":
        aligned.pop("video_emb")
        if shuffle_seed is not None:
            aligned = shuffle_windows(aligned, names, shuffle_seed)
        arrays.update(aligned)
        return FusionDataset(split, inputs, arrays, activity_dim)
    if video == "dense":
        has = aligned["video_mask"].any(1)
        arrays["video_utt"] = np.where(has[:, None], aligned["video_emb"], 0.0).astype(
            np.float32)
        arrays["video_present"] = has
    if audio == "windowed":
        arrays["audio_utt"], arrays["audio_present"] = pooled_windows(
            aligned["audio_win"], aligned["audio_mask"])
    return FusionDataset(split, inputs, arrays)


def frame_activity_steps(frames_dir: PathLike, names: list[str], t_s: np.ndarray,
                         lengths: np.ndarray, tol: float) -> np.ndarray:
    """``[N,T,G]`` frame activity of each clip's dense steps, matched by timestamp (0 where a
    step has no stored frame within ``tol``)."""
    store = FrameStore(frames_dir)
    out: np.ndarray | None = None
    for i, (name, n) in enumerate(zip(names, lengths, strict=True)):
        if n == 0 or name not in store:
            continue
        act, t = store.activity(name)
        if out is None:
            out = np.zeros((*t_s.shape, act.shape[1]), dtype=np.float32)
        near = np.abs(t[None, :] - t_s[i, :n, None])  # steps x stored frames
        j = near.argmin(1)
        ok = near[np.arange(n), j] <= tol
        out[i, :n][ok] = act[j[ok]]
    if out is None:
        raise DataStageError(f"{frames_dir}: no frames of the fusion clips; rerun the frames "
                             "stage of the dense frame set")
    return out


def pooled_windows(win: np.ndarray | ScratchArray, mask: np.ndarray,
                   chunk: int = _STEP_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """A clip's windows summarised without their times: masked mean and max over valid steps
    (``[N,T,D]`` -> ``[N,2D]``) and whether any window is valid (``chunk`` clips at a time)."""
    present = mask.any(1)
    out = np.empty((len(mask), 2 * win.shape[2]), np.float32)
    for s in range(0, len(mask), chunk):
        w, m = win[s : s + chunk], mask[s : s + chunk, :, None]
        mean = (w * m).sum(1) / np.maximum(m.sum(1), 1)
        mx = np.where(m, w, -np.inf).max(1, initial=-np.inf)
        mx = np.where(present[s : s + chunk, None], mx, 0.0)
        out[s : s + chunk] = np.concatenate([mean, mx], axis=1)
    return out, present


def shuffle_windows(aligned: dict[str, Any], names: list[str], seed: int,
                    chunk: int = _STEP_CHUNK) -> dict[str, Any]:
    """The negative control: each clip's windows (with their masks and times) permuted among
    its own steps, one fixed permutation per (seed, clip) whatever the split or epoch."""
    out = dict(aligned)
    src = aligned["audio_win"]
    win = _zeros_like(src)
    mask, t = aligned["audio_mask"].copy(), aligned["audio_t_s"].copy()
    for s in range(0, len(mask), chunk):
        block = np.array(src[s : s + chunk])
        for i in range(s, min(s + chunk, len(mask))):
            n = int(aligned["lengths"][i])
            if n < 2:
                continue
            perm = np.random.default_rng([seed, zlib.crc32(names[i].encode())]).permutation(n)
            block[i - s, :n], mask[i, :n], t[i, :n] = block[i - s, perm], mask[i, perm], \
                t[i, perm]
        win[s : s + chunk] = block
    out.update(audio_win=win, audio_mask=mask, audio_t_s=t)
    return out


def _zeros_like(x: np.ndarray | ScratchArray) -> np.ndarray | ScratchArray:
    return x.zeros_like() if isinstance(x, ScratchArray) else np.zeros_like(x)


def _concat_steps(a: ScratchArray, b: np.ndarray, chunk: int = _STEP_CHUNK) -> ScratchArray:
    """``np.concatenate([a, b], axis=2)`` into a new scratch array, ``chunk`` clips at a time."""
    out = ScratchArray((*a.shape[:2], a.shape[2] + b.shape[2]), np.float32)
    for s in range(0, len(a), chunk):
        out[slice(s, s + chunk)] = np.concatenate([a[s : s + chunk], b[s : s + chunk]], axis=2)
    return out


def _aligned_arrays(
    names: list[str],
    a_present: np.ndarray,
    video_dense: PathLike,
    aligned_dir: PathLike,
    window_pool: int,
    tol: float,
) -> dict[str, Any]:
    dense = EmbeddingFile.read(video_dense)
    pos = {n: i for i, n in enumerate(dense.clip_name)}
    d_row = np.array([pos.get(n, -1) for n in names], dtype=np.int64)
    has = d_row >= 0
    src = np.maximum(d_row, 0)
    lengths = np.where(has, dense.lengths[src], 0).astype(np.int64)
    t_max = max(int(lengths.max()), 1)
    step = np.arange(t_max)[None, :] < lengths[:, None]
    # Split-sized step arrays live in scratch files (avemo.npy_io.ScratchArray): a batch
    # reads its rows, and the job's memory does not grow with the corpus.
    seq = ScratchArray((len(names), t_max, dense.seq.shape[2]), np.float32)
    for s in range(0, len(names), _STEP_CHUNK):
        part = dense.seq[src[s : s + _STEP_CHUNK], :t_max].astype(np.float32, copy=False)
        part *= step[s : s + _STEP_CHUNK, :, None]
        seq[slice(s, s + _STEP_CHUNK)] = part
    t_s = np.where(step, dense.t_s[src][:, :t_max], np.nan).astype(np.float32)
    windows, index = _read_aligned(aligned_dir)
    win_row = _match_windows(names, t_s, lengths, index, tol)
    a_mask = (win_row >= 0) & a_present[:, None]
    # Pooled straight into place, a chunk of steps at a time in the file's row order (compact
    # reads): no second split-sized array of pooled rows beside audio_win.
    ci, si = np.nonzero(a_mask)
    rows = win_row[ci, si]
    order = np.argsort(rows, kind="stable")
    audio_win = ScratchArray((len(names), t_max, pooled_width(windows, window_pool)), np.float32)
    for s in range(0, len(order), _POOL_CHUNK):
        o = order[s : s + _POOL_CHUNK]
        audio_win.set_cells(ci[o], si[o], pool_windows(windows, window_pool, rows=rows[o]))
    win_t = index["t_s"].to_numpy(np.float32)
    return {
        "video_emb": np.where(has[:, None], dense.emb[src], 0.0).astype(np.float32),
        "video_seq": seq,
        "video_mask": step.copy(),
        "t_s": t_s,
        "lengths": lengths,
        "audio_win": audio_win,
        "audio_mask": a_mask,
        "audio_t_s": np.where(win_row >= 0, win_t[np.maximum(win_row, 0)], np.nan).astype(
            np.float32
        ),
    }
