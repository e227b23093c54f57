"""Inference: per-clip predictions (docs/formats.md section 5) and embedding export.

Frame-level models see one item per frame; their logits are aggregated per clip (mean of
logits by default, ``max`` or ``vote``). Sequence and vector models have one item per clip, for
which aggregation is the identity.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from avemo.atomic import atomic_path
from avemo.errors import TrainingError
from avemo.labels import EMOTIONS, SENTIMENTS
from avemo.npy_io import Streamed, write_npz

AGGREGATES = ("mean", "max", "vote")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def loader_workers(num_workers: int, device: torch.device) -> int:
    """DataLoader worker processes actually used: ``num_workers`` on CUDA, none on CPU.

    Every dataset is held in memory, so building a batch costs milliseconds. On CPU a worker
    only takes a core from the model's intra-op threads, and a fresh loader forks the whole
    process (~1 GB with torch) at every epoch's start, which also doubles the job's measured
    memory. Results do not depend on it: augmentation is keyed by (seed, epoch, index).
    """
    return num_workers if device.type == "cuda" else 0


def make_eval_loader(ds: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    # A fixed generator keeps evaluation from drawing on the global RNG (resume exactness).
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=getattr(ds, "collate", None),
        generator=torch.Generator().manual_seed(0),
    )


@torch.inference_mode()  # no autograd bookkeeping at all (cheaper than no_grad)
def collect_outputs(
    model: nn.Module,
    ds: Dataset,
    device: torch.device,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    amp: bool = False,
    seq_sink: Callable[[np.ndarray, np.ndarray], None] | None = None,
    loss_fn: nn.Module | None = None,
) -> dict[str, Any]:
    """Item-level outputs of ``model`` on ``ds`` in dataset order (model in eval mode).

    Returns ``clip_name`` (list), ``emotion``/``sentiment`` (float32 logits), ``embedding``,
    ``emotion_true``/``sentiment_true`` (int), ``loss`` (mean item loss when ``loss_fn``).
    A sequence model's per-step outputs go to ``seq_sink(seq, t_s)`` item by item (T_i×D and
    T_i, views into the batch: copy to keep), so they never pile up in memory.
    """
    model.eval()
    # Each output is written into one array of len(ds) rows made at its first batch, not kept
    # as per-batch pieces: small long-lived blocks between each batch's large freed temporaries
    # kept the allocator from returning them (+1 GB of RSS over MELD's dense train frames).
    total = len(ds)  # type: ignore[arg-type]
    res: dict[str, Any] = {"clip_name": []}

    def put(key: str, rows: torch.Tensor, start: int) -> None:
        rows_np = rows.detach().cpu().numpy()
        if key not in res:
            res[key] = np.empty((total, *rows_np.shape[1:]), rows_np.dtype)
        res[key][start : start + len(rows_np)] = rows_np

    loss_sum, n = 0.0, 0
    for batch in make_eval_loader(ds, batch_size, loader_workers(num_workers, device)):
        batch = to_device(batch, device)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            out = model(batch)
        b = len(batch["clip_name"])
        if loss_fn is not None:
            loss_sum += float(loss_fn(out, batch)) * b
        res["clip_name"] += list(batch["clip_name"])
        for k in ("emotion", "sentiment", "embedding"):
            put(k, out[k].float(), n)
        put("emotion_true", batch["emotion"], n)
        put("sentiment_true", batch["sentiment"], n)
        n += b
        if seq_sink is not None and "seq" in out:
            lengths = batch["lengths"].cpu().numpy()
            seq = out["seq"].float().cpu().numpy()
            t_s = batch["t_s"].cpu().numpy()
            for i in range(b):
                seq_sink(seq[i, : lengths[i]], t_s[i, : lengths[i]])
    if n != total:
        raise TrainingError(f"{getattr(ds, 'split', 'dataset')}: the loader gave {n} items, "
                            f"the dataset has {total}")
    res["loss"] = loss_sum / max(n, 1)
    return res


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _group(names: list[str]) -> tuple[list[str], np.ndarray]:
    """Clips in order of first appearance and each item's clip index."""
    order: dict[str, int] = {}
    inv = np.array([order.setdefault(c, len(order)) for c in names], dtype=np.int64)
    return list(order), inv


def aggregate_probs(logits: np.ndarray, inv: np.ndarray, n_clips: int, how: str) -> np.ndarray:
    """Per-clip class probabilities from item logits grouped by ``inv``."""
    if how not in AGGREGATES:
        raise TrainingError(f"unknown aggregate {how!r}; use one of {list(AGGREGATES)}")
    k = logits.shape[1]
    if how == "max":
        agg = np.full((n_clips, k), -np.inf, dtype=np.float64)
        np.maximum.at(agg, inv, logits)
        return _softmax(agg)
    mean = np.zeros((n_clips, k), dtype=np.float64)
    np.add.at(mean, inv, logits)
    mean /= np.bincount(inv, minlength=n_clips)[:, None]
    if how == "mean":
        return _softmax(mean)
    votes = np.zeros((n_clips, k), dtype=np.float64)
    np.add.at(votes, (inv, logits.argmax(1)), 1.0)
    votes += 1e-3 * _softmax(mean)  # breaks ties by the mean logits
    return votes / votes.sum(1, keepdims=True)


def mean_by_clip(x: np.ndarray, inv: np.ndarray, n_clips: int) -> np.ndarray:
    out = np.zeros((n_clips, *x.shape[1:]), dtype=np.float64)
    np.add.at(out, inv, x)
    return (out / np.bincount(inv, minlength=n_clips)[:, None]).astype(np.float32)


def clip_level(res: dict[str, Any], how: str = "mean") -> dict[str, Any]:
    """Aggregate collect_outputs' items to clips: probabilities, true labels, embeddings."""
    clips, inv = _group(res["clip_name"])
    n = len(clips)
    first = np.unique(inv, return_index=True)[1]  # labels are per clip, take the first item
    return {
        "clip_name": clips,
        "p_emotion": aggregate_probs(res["emotion"], inv, n, how),
        "p_sentiment": aggregate_probs(res["sentiment"], inv, n, how),
        "emotion_true": res["emotion_true"][first],
        "sentiment_true": res["sentiment_true"][first],
        "embedding": mean_by_clip(res["embedding"], inv, n),
    }


def predict(
    model: nn.Module,
    ds: Dataset,
    device: str | torch.device = "auto",
    *,
    aggregate: str = "mean",
    batch_size: int = 64,
    num_workers: int = 0,
) -> pd.DataFrame:
    """One row per clip: ``clip_name, emotion, sentiment`` (true labels) and
    ``p_emotion_<label>`` × 7, ``p_sentiment_<label>`` × 3, clips in dataset order."""
    dev = resolve_device(device)
    model.to(dev)
    clip = clip_level(
        collect_outputs(model, ds, dev, batch_size=batch_size, num_workers=num_workers),
        aggregate,
    )
    df = pd.DataFrame(
        {
            "clip_name": clip["clip_name"],
            "emotion": [EMOTIONS[i] for i in clip["emotion_true"]],
            "sentiment": [SENTIMENTS[i] for i in clip["sentiment_true"]],
        }
    )
    for j, lab in enumerate(EMOTIONS):
        df[f"p_emotion_{lab}"] = clip["p_emotion"][:, j].astype(np.float32)
    for j, lab in enumerate(SENTIMENTS):
        df[f"p_sentiment_{lab}"] = clip["p_sentiment"][:, j].astype(np.float32)
    return df


def export_embeddings(
    model: nn.Module,
    ds: Dataset,
    path: str | Path,
    device: str | torch.device = "auto",
    *,
    batch_size: int = 64,
    num_workers: int = 0,
) -> None:
    """Write ``embeddings_{split}.npz`` at ``path``: ``clip_name`` (str), ``emb`` (N×D float32,
    frame models: mean over the clip's frames); sequence models add ``seq`` (N×T×D, zero
    padded), ``lengths`` (N) and ``t_s`` (N×T, NaN padded)."""
    dev = resolve_device(device)
    model.to(dev)
    path = Path(path)
    with _SeqSpill(path.parent) as spill:
        res = collect_outputs(
            model, ds, dev, batch_size=batch_size, num_workers=num_workers, seq_sink=spill.add
        )
        clip = clip_level(res)
        arrays: dict[str, np.ndarray] = {
            "clip_name": np.asarray(clip["clip_name"], dtype=str),
            "emb": clip["embedding"],
        }
        streamed: dict[str, Streamed] = {}
        if spill.lengths and len(clip["clip_name"]) == len(res["clip_name"]):
            lengths = np.asarray(spill.lengths, dtype=np.int64)
            t_max = int(lengths.max())
            t_s = np.full((len(lengths), t_max), np.nan, dtype=np.float32)
            for i, t in enumerate(spill.t_s):
                t_s[i, : len(t)] = t
            arrays.update(lengths=lengths, t_s=t_s)
            streamed["seq"] = Streamed((len(lengths), t_max, spill.dim), np.dtype(np.float32),
                                       spill.padded(t_max))
        with atomic_path(path) as tmp:
            write_npz(tmp, arrays, streamed)


class _SeqSpill:
    """Per-step outputs of a sequence model, item by item, kept in a temporary file (MELD's
    train split as audio_cnn's padded 256-step sequences: 0.65 GB, twice over while padding)
    and read back one item at a time, zero padded, as the export writes them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # beside the export: room for it is needed there anyway

    def __enter__(self) -> _SeqSpill:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(prefix=".avemo-seq-", dir=self.folder)
        self.lengths: list[int] = []
        self.t_s: list[np.ndarray] = []
        self._offsets: list[int] = []
        self.dim = 0
        self._end = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, seq: np.ndarray, t_s: np.ndarray) -> None:
        data = np.ascontiguousarray(seq, dtype=np.float32)
        self.dim = data.shape[1]
        self._offsets.append(self._end)
        self.lengths.append(len(data))
        self.t_s.append(np.array(t_s, dtype=np.float32))
        self._file.write(memoryview(data).cast("B"))
        self._end += data.nbytes

    def padded(self, t_max: int) -> Iterator[np.ndarray]:
        self._file.flush()
        fd = self._file.fileno()
        item = np.zeros((1, t_max, self.dim), dtype=np.float32)
        for off, n in zip(self._offsets, self.lengths, strict=True):
            item[0, n:] = 0.0
            raw = os.pread(fd, n * self.dim * 4, off)
            item[0, :n] = np.frombuffer(raw, dtype=np.float32).reshape(n, self.dim)
            yield item
