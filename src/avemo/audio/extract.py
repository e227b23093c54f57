"""Audio stage: manifest ``ok`` clips -> utterance and frame-aligned audio features.

Format: docs/formats.md section 4. Stage function: :func:`extract_audio`.

A clip whose audio cannot be used (no audio stream, undecodable, empty, or silent) gets a row
with ``mask=False``, its reason, and zeros in every array: one bad clip never stops the stage.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchaudio

from avemo.atomic import atomic_dir, write_json
from avemo.audio import aligned as aligned_mod
from avemo.audio import egemaps as egemaps_mod
from avemo.audio import features as features_mod
from avemo.audio import ssl as ssl_mod
from avemo.audio import store
from avemo.audio.decode import AudioDecodeError, at_rate
from avemo.audio.mono import decode_mono
from avemo.errors import ConfigError, DataStageError
from avemo.manifest import read_manifest, usable
from avemo.npy_io import pwrite_rows
from avemo.progress import progress

SSL_MODES: tuple[str, ...] = ("off", "on", "random")
ON_MISSING: tuple[str, ...] = ("error", "skip")
FRAMES_INDEX = "index.parquet"


@dataclass(frozen=True)
class _Params:
    sample_rate: int
    n_mels: int
    window_s: float
    hop_s: float
    egemaps: bool
    silence_dbfs: float
    ssl_model: str | None  # None: no SSL embeddings
    ssl_pretrained: bool


def read_frame_times(frames_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """``clip_name, t_s`` of every sampled video frame, in the frames index row order.

    The one place that reads the frames stage's output (swap in ``FrameStore.index`` here).
    """
    path = Path(frames_dir) / FRAMES_INDEX
    hint = "run the frames stage for this split first"
    if not path.is_file():
        raise DataStageError(f"{path}: frames index not found; {hint}")
    try:
        df = pd.read_parquet(path, columns=["clip_name", "t_s"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataStageError(f"{path}: unreadable frames index ({exc}); {hint}") from exc
    df["clip_name"] = df["clip_name"].astype(str)
    df["t_s"] = df["t_s"].astype(np.float32)
    return df.reset_index(drop=True)


def _empty_result(name: str, has_audio: bool, reason: str) -> dict[str, Any]:
    return {
        "clip_name": name,
        "ok": False,
        "reason": reason,
        "has_audio": has_audio,
        "silent": False,
        "duration_s": 0.0,
        "mask": False,
    }


def _analyse(
    name: str,
    path: str,
    has_audio: bool,
    times: np.ndarray,
    p: _Params,
    decoded: Future[tuple[np.ndarray, int]] | None = None,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Every feature of one clip but eGeMAPS, and its waveform when it is not masked.

    ``decoded``: the clip's ``decode_mono`` running in a worker (None: decode here).
    """
    if not has_audio:
        return _empty_result(name, False, "no_audio"), None
    try:
        wave = at_rate(_decoded_here_or_there(path, decoded), p.sample_rate)
    except AudioDecodeError as exc:
        return _empty_result(name, exc.reason != "no_audio", exc.reason), None
    rate = p.sample_rate
    res = _empty_result(name, True, "")
    res["ok"] = True
    res["duration_s"] = wave.numel() / rate
    rms = float(wave.pow(2).mean().sqrt())
    if 20 * math.log10(rms + 1e-12) < p.silence_dbfs:
        res.update(silent=True, reason="silent")
        return res, None
    # One STFT feeds both the 192-D vector and the log-mel sequence.
    res["utterance"], logmel = features_mod.utterance_and_logmel(wave, rate, p.n_mels, p.hop_s)
    res["mask"] = True
    res["logmel"] = logmel.astype(np.float16)
    res["aligned"] = aligned_mod.windows_from_logmel(logmel, times, p.window_s, p.hop_s)
    if p.ssl_model is not None:
        model = ssl_mod.cached_ssl_model(p.ssl_model, p.ssl_pretrained)
        res["ssl"] = ssl_mod.ssl_embedding(model, wave)
    return res, wave


def _decoded_here_or_there(
    path: str, decoded: Future[tuple[np.ndarray, int]] | None
) -> tuple[np.ndarray, int]:
    """``decode_mono(path)``: a worker's result when it has it or is at it; else (still
    queued, e.g. while the workers start) cancelled and decoded here, so that this process
    never waits idle. The same function either way, so the same samples."""
    if decoded is not None and (decoded.done() or not decoded.cancel()):
        return decoded.result()
    return decode_mono(path)


def process_clip(
    name: str, path: str, has_audio: bool, times: np.ndarray, p: _Params
) -> dict[str, Any]:
    """All features of one clip; masked rows carry only their status (arrays are zeros)."""
    res, wave = _analyse(name, path, has_audio, times, p)
    if p.egemaps and wave is not None:
        res["egemaps"] = egemaps_mod.egemaps_vector(wave, p.sample_rate)
    return res


@contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """``workers`` processes that compute eGeMAPS or decode clips (0: none, all in here).

    eGeMAPS is ~80 % of the stage's time, so it is spread when enabled; without it the
    workers decode (PyAV, mostly per-frame Python: ~60 % of the rest), so that this process
    only resamples, computes the 192-D vector, log-mels and SSL (one torch) and writes.
    Workers are spawned and import only avemo.audio.mono and avemo.audio.egemaps (PyAV,
    numpy, openSMILE; ~130 MB) instead of torch's CUDA build (~600 MB).
    """
    if workers < 1:
        yield None
        return
    ctx = multiprocessing.get_context("spawn")  # fork() of a process running torch can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _decoding_ahead(
    pool: ProcessPoolExecutor | None, tasks: list[tuple[str, str, bool, np.ndarray, _Params]],
    ahead: int,
) -> Iterator[Future[tuple[np.ndarray, int]] | None]:
    """Per task, in order, its clip's ``decode_mono`` in the pool, submitted ``ahead`` tasks
    early so the workers decode while this process computes features (None: no pool, or no
    audio stream). At most ``ahead`` decoded clips wait in memory."""
    futures: dict[int, Future[tuple[np.ndarray, int]]] = {}

    def submit(j: int) -> None:
        if pool is not None and j < len(tasks) and tasks[j][2]:
            futures[j] = pool.submit(decode_mono, tasks[j][1])

    for j in range(ahead):
        submit(j)
    for i in range(len(tasks)):
        submit(i + ahead)
        yield futures.pop(i, None)


class _RowFile:
    """A zero-filled ``.npy`` written row by row with ``os.pwrite`` (``f[i] = row``,
    ``f[rows] = block``). A writable memory map would do the same, but every page it writes
    stays mapped, and so counted in the job's resident memory, until it is closed: at MELD's
    size the aligned windows alone are 2 GB."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: type | str) -> None:
        shape = tuple(int(d) for d in shape)  # numpy ints would print as np.int64(...)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * math.prod(shape[1:])
        with open(path, "wb") as f:  # header, then a sparse zero-filled body
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                    "shape": shape})
            self.offset = f.tell()
            f.truncate(self.offset + shape[0] * self.row_bytes)
        self.fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, rows: int | np.ndarray, values: np.ndarray) -> None:
        # Runs of consecutive rows (a clip's frames usually are one) go in one write each.
        pwrite_rows(self.fd, self.offset, self.row_bytes, np.atleast_1d(rows),
                    np.ascontiguousarray(values, dtype=self.dtype))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _check_params(
    sample_rate: int,
    n_mels: int,
    window_s: float,
    hop_s: float,
    ssl: str,
    ssl_on_missing: str,
    workers: int,
) -> None:
    problems = []
    if sample_rate < 8000:
        problems.append(f"audio.sample_rate={sample_rate} (must be >= 8000)")
    if n_mels < 1 or window_s <= 0 or hop_s <= 0 or hop_s > window_s:
        problems.append(
            f"n_mels={n_mels}, window_s={window_s}, hop_s={hop_s} (need n_mels >= 1"
            " and 0 < hop_s <= window_s)"
        )
    if ssl not in SSL_MODES:
        problems.append(f"audio.ssl={ssl!r} (one of {', '.join(SSL_MODES)})")
    if ssl_on_missing not in ON_MISSING:
        problems.append(f"audio.ssl_on_missing={ssl_on_missing!r} (one of {', '.join(ON_MISSING)})")
    if workers < 1:
        problems.append(f"workers={workers} (must be >= 1)")
    if problems:
        raise ConfigError("invalid audio stage parameters: " + "; ".join(problems))


def _resolve_ssl(ssl: str, ssl_model: str, ssl_on_missing: str, notes: list[str]) -> bool:
    """Whether SSL embeddings will be written; with ``skip``, missing weights become a note."""
    if ssl == "off":
        return False
    try:
        # Load in the parent first: a missing weights file fails before any work is done.
        ssl_mod.cached_ssl_model(ssl_model, ssl == "on")
    except DataStageError as exc:
        if ssl_on_missing == "error":
            raise
        notes.append(f"SSL embeddings skipped (audio.ssl_on_missing=skip): {exc}")
        return False
    return True


def _frame_positions(
    frames: pd.DataFrame, clips: pd.DataFrame, notes: list[str]
) -> dict[str, np.ndarray]:
    """Row numbers of each clip's frames in the frames index: aligned rows are written there."""
    positions: dict[str, np.ndarray] = {
        str(k): v for k, v in frames.groupby("clip_name", sort=False).indices.items()
    }
    manifest_names = set(clips["clip_name"].astype(str))
    orphan_frames = int(sum(len(v) for k, v in positions.items() if k not in manifest_names))
    if orphan_frames:
        notes.append(
            f"{orphan_frames} frame rows belong to clips not usable in the manifest; "
            "their aligned windows are zeros"
        )
    return positions


_NO_POSITIONS = np.zeros(0, dtype=np.int64)


def _make_tasks(
    clips: pd.DataFrame, frames: pd.DataFrame, positions: dict[str, np.ndarray], p: _Params
) -> list[tuple[str, str, bool, np.ndarray, _Params]]:
    """One picklable task per usable clip, in manifest order, with its frame timestamps."""
    frame_t = frames["t_s"].to_numpy(np.float64)
    return [
        (
            str(r.clip_name),
            str(r.clip_path),
            bool(r.has_audio),
            frame_t[positions.get(str(r.clip_name), _NO_POSITIONS)],
            p,
        )
        for r in clips.itertuples(index=False)
    ]


@dataclass
class _Writer:
    """The stage's arrays, filled clip by clip inside the temporary output folder."""

    tmp: Path
    n_mels: int
    utt: _RowFile
    ali: _RowFile
    ege: _RowFile | None
    emb: _RowFile | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # clip, start, length
    total: int = 0  # log-mel frames written so far

    @classmethod
    def open(
        cls, tmp: Path, n: int, n_frames: int, n_mels: int, w: int, egemaps: bool, ssl: bool
    ) -> _Writer:
        def new(name: str, shape: tuple[int, ...]) -> _RowFile:
            return _RowFile(tmp / name, shape, np.float32)

        return cls(
            tmp,
            n_mels,
            utt=new(store.UTTERANCE_FILE, (n, features_mod.DIM)),
            ali=new(store.ALIGNED_FILE, (n_frames, n_mels, w)),
            ege=new(store.EGEMAPS_FILE, (n, egemaps_mod.DIM)) if egemaps else None,
            emb=new(store.SSL_FILE, (n, ssl_mod.DIM)) if ssl else None,
        )

    @property
    def raw_path(self) -> Path:
        # Log-mel lengths are only known once decoded: stream them to a raw file, copy at the end.
        return self.tmp / "logmel.raw"

    def add(self, i: int, res: dict[str, Any], pos: np.ndarray, raw: Any) -> None:
        """Clip ``i``'s features (masked clips keep their zeros and get an empty log-mel)."""
        if res["mask"]:
            self.utt[i] = res["utterance"]
            if self.ege is not None and "egemaps" in res:  # else a worker's, via set_egemaps
                self.ege[i] = res["egemaps"]
            if self.emb is not None:
                self.emb[i] = res["ssl"]
            if len(pos):
                self.ali[pos] = res["aligned"]
            lm = res["logmel"]
            raw.write(np.ascontiguousarray(lm).tobytes())
            self.spans.append((res["clip_name"], self.total, len(lm)))
            self.total += len(lm)
        else:
            self.spans.append((res["clip_name"], self.total, 0))
        self.rows.append({k: res[k] for k in store.CLIPS_COLUMNS})

    def set_egemaps(self, pending: dict[Future[np.ndarray], int]) -> None:
        """Store the finished eGeMAPS jobs (future -> clip row) and drop them from ``pending``."""
        assert self.ege is not None
        for fut in [f for f in pending if f.done()]:
            self.ege[pending.pop(fut)] = fut.result()

    def finish(self) -> None:
        """Close the row files and copy the streamed log-mels into ``logmel.npy`` in chunks."""
        for arr in (self.utt, self.ege, self.emb, self.ali):
            if arr is not None:
                arr.close()
        logmel = _RowFile(self.tmp / store.LOGMEL_FILE, (self.total, self.n_mels), np.float16)
        step = 1 << 16
        row_bytes = logmel.row_bytes
        with open(self.raw_path, "rb") as src:
            for s in range(0, self.total, step):
                block = src.read(min(step, self.total - s) * row_bytes)
                os.pwrite(logmel.fd, block, logmel.offset + s * row_bytes)
        logmel.close()
        self.raw_path.unlink()


def _write_tables(tmp: Path, w: _Writer, frames: pd.DataFrame, ssl_written: bool) -> None:
    """clips, aligned index, log-mel index (and SSL index) tables beside the arrays."""
    clips_df = pd.DataFrame(w.rows, columns=list(store.CLIPS_COLUMNS)).astype(
        {
            "clip_name": str,
            "ok": bool,
            "reason": str,
            "has_audio": bool,
            "silent": bool,
            "duration_s": np.float64,
            "mask": bool,
        }
    )
    clips_df.to_parquet(tmp / store.CLIPS_FILE, index=False)
    frames[["clip_name", "t_s"]].to_parquet(tmp / store.ALIGNED_INDEX_FILE, index=False)
    pd.DataFrame(w.spans, columns=["clip_name", "start", "length"]).astype(
        {"start": np.int64, "length": np.int64}
    ).to_parquet(tmp / store.LOGMEL_INDEX_FILE, index=False)
    if ssl_written:
        clips_df[["clip_name", "mask"]].to_parquet(tmp / store.SSL_INDEX_FILE, index=False)


def _summary(w: _Writer, n_frames: int, t0: float) -> dict[str, Any]:
    reasons = Counter(r["reason"] for r in w.rows if r["reason"])
    return {
        "clips": len(w.rows),
        "masked": int(sum(not r["mask"] for r in w.rows)),
        "reasons": dict(sorted(reasons.items())),
        "frames": n_frames,
        "logmel_frames": w.total,
        "audio_seconds": float(sum(r["duration_s"] for r in w.rows)),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _meta(
    stage_params: dict[str, Any],
    inputs: dict[str, str],
    ssl_written: bool,
    notes: list[str],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """``meta.json``: how the folder was made, what it holds, and what to know about it."""
    return {
        "params": stage_params,
        "inputs": inputs,
        "ssl_written": ssl_written,
        "notes": notes,
        "summary": summary,
        "utterance_features": list(features_mod.UTTERANCE_FEATURE_NAMES),
        "egemaps_features": egemaps_mod.egemaps_names() if stage_params["egemaps"] else [],
        "versions": {"torch": torch.__version__, "torchaudio": torchaudio.__version__},
    }


def extract_audio(
    manifest_path: str | os.PathLike[str],
    frames_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    sample_rate: int = 16000,
    n_mels: int = 64,
    window_s: float = 1.0,
    hop_s: float = 0.01,
    egemaps: bool = True,
    ssl: str = "off",
    ssl_model: str = "WAV2VEC2_BASE",
    ssl_on_missing: str = "error",
    workers: int = 1,
    silence_dbfs: float = -70.0,
) -> dict[str, Any]:
    """Write ``out_dir`` (= ``audio/{split}/``, replaced atomically) for one split.

    Args:
        manifest_path: ``manifest/{split}.parquet``; its ``ok`` rows are processed, in order.
        frames_dir: ``frames/{split}/``; only ``index.parquet`` is read (frame timestamps).
        out_dir: output directory (docs/formats.md section 4).
        sample_rate: rate every clip is resampled to (mono).
        n_mels, window_s, hop_s: log-mel bands, aligned window length and frame hop (s).
        egemaps: also write ``egemaps.npy`` (openSMILE eGeMAPSv02, 88-D; the slow part).
        ssl: ``"off"``; ``"on"`` (pretrained ``ssl_model`` from the torch hub cache or the
            network); ``"random"`` (same architecture, random weights: tests and dry runs).
        ssl_model: ``WAV2VEC2_BASE`` or ``HUBERT_BASE``.
        ssl_on_missing: ``"error"`` raises DataStageError when pretrained weights cannot be
            had; ``"skip"`` writes no ``ssl.npy`` and says so in ``meta.json`` (``notes``).
        workers: processes that compute eGeMAPS or, without it, decode clips (1: all in
            this process); everything else runs in this process. Rows are written in
            manifest order, and the output does not depend on ``workers``.
        silence_dbfs: clips whose whole-clip RMS is below this level are masked as ``silent``.

    Returns: summary dict (clips, masked, reasons, frames, audio_seconds, seconds, ...).
    """
    _check_params(sample_rate, n_mels, window_s, hop_s, ssl, ssl_on_missing, workers)
    t0 = time.perf_counter()
    clips = usable(read_manifest(manifest_path))
    frames = read_frame_times(frames_dir)
    notes: list[str] = []
    use_ssl = _resolve_ssl(ssl, ssl_model, ssl_on_missing, notes)
    params = _Params(
        sample_rate=int(sample_rate),
        n_mels=int(n_mels),
        window_s=float(window_s),
        hop_s=float(hop_s),
        egemaps=bool(egemaps),
        silence_dbfs=float(silence_dbfs),
        ssl_model=ssl_model if use_ssl else None,
        ssl_pretrained=ssl == "on",
    )
    positions = _frame_positions(frames, clips, notes)
    tasks = _make_tasks(clips, frames, positions, params)
    w = aligned_mod.window_frames(window_s, hop_s)

    with atomic_dir(out_dir) as tmp:
        writer = _Writer.open(tmp, len(tasks), len(frames), n_mels, w, egemaps, use_ssl)
        pending: dict[Future[np.ndarray], int] = {}  # eGeMAPS jobs in the workers -> row
        rate = params.sample_rate
        # Without eGeMAPS this process, busy with the features, counts as one of the workers.
        n_pool = workers if egemaps and workers > 1 else workers - 1
        with open(writer.raw_path, "wb") as raw, _worker_pool(n_pool) as pool:
            # With eGeMAPS the workers are the bottleneck and this process has time to spare:
            # it decodes itself, which also saves shipping 48 kHz samples back from them.
            decoding = _decoding_ahead(None if egemaps else pool, tasks, ahead=4 * workers)
            for i, (task, decoded) in enumerate(
                zip(progress(tasks, desc="audio", unit="clip"), decoding, strict=True)
            ):
                res, wave = _analyse(*task, decoded=decoded)
                if egemaps and wave is not None:
                    if pool is None:
                        res["egemaps"] = egemaps_mod.egemaps_vector(wave, params.sample_rate)
                    else:
                        job = pool.submit(egemaps_mod.egemaps_vector, wave.numpy(), rate)
                        pending[job] = i
                        if len(pending) >= 2 * workers:  # workers kept busy, memory bounded
                            wait(pending, return_when=FIRST_COMPLETED)
                            writer.set_egemaps(pending)
                writer.add(i, res, positions.get(res["clip_name"], _NO_POSITIONS), raw)
            wait(pending)
            if pending:
                writer.set_egemaps(pending)
        writer.finish()
        _write_tables(tmp, writer, frames, use_ssl)
        summary = _summary(writer, len(frames), t0)
        stage_params = {
            "sample_rate": sample_rate,
            "n_mels": n_mels,
            "window_s": window_s,
            "hop_s": hop_s,
            "window_frames": w,
            "egemaps": egemaps,
            "ssl": ssl,
            "ssl_model": ssl_model,
            "ssl_on_missing": ssl_on_missing,
            "silence_dbfs": silence_dbfs,
            "workers": workers,
        }
        inputs = {"manifest": str(manifest_path), "frames_dir": str(frames_dir)}
        write_json(tmp / store.META_FILE, _meta(stage_params, inputs, use_ssl, notes, summary))
    return summary
