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
from avemo.errors import ConfigError, TrainingError
from avemo.labels import EMOTIONS, SENTIMENTS
from avemo.npy_io import Streamed, write_npz
from avemo.training.data import IMAGENET_MEAN, IMAGENET_STD

AGGREGATES = ("mean", "max", "vote")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` on a machine without a GPU is a
    ConfigError at once (one line): the job would otherwise train on CPU until its time limit."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"engine device is {str(device)!r} but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False): run the training rules on a GPU node "
            "(--profile workflow/profiles/slurm-gpu), or for a CPU run set device: cpu (or auto) "
            "in train.engine (workflow/presets/meld.yaml sets cuda)"
        )
    return dev


# Tensors the models read on the host (pack_padded_sequence wants CPU lengths): moving them to
# the device and back would synchronise CUDA at every batch.
HOST_KEYS = frozenset({"lengths"})


def normalize_frames(x: torch.Tensor, jitter: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [...,3,H,W] -> ImageNet-normalised float32 on x's device, with a per-item
    brightness ``jitter`` ([B], broadcast over the rest) when given. The same elementwise
    float32 operations as :func:`avemo.training.data.frames_to_tensor`, so the values are equal;
    done here so a quarter of the bytes cross shared memory and PCIe."""
    y = x.float().div_(255.0)
    if jitter is not None:
        y = y.mul_(jitter.to(y.device, torch.float32).view(-1, *([1] * (y.ndim - 1))))
        y = y.clamp_(0.0, 1.0)
    mean, std = _imagenet_stats(y.device)
    return (y - mean) / std


_STATS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _imagenet_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Copied to each device once: a copy from pageable host memory per batch would wait for
    # the GPU's queue to drain every time.
    key = str(device)
    if key not in _STATS:
        _STATS[key] = (IMAGENET_MEAN.to(device), IMAGENET_STD.to(device))
    return _STATS[key]


def to_device(batch: dict[str, Any], device: torch.device,
              channels_last: bool = False) -> dict[str, Any]:
    """Move a batch to ``device`` (asynchronously where the loader pinned it), uint8 frames
    normalised there (channels_last on CUDA for the VGG models); ``HOST_KEYS`` stay put."""
    out = {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in HOST_KEYS else v
        for k, v in batch.items()
    }
    x = out.get("x")
    if torch.is_tensor(x) and x.dtype == torch.uint8:
        x = normalize_frames(x, out.pop("jitter", None))
        if channels_last and device.type == "cuda" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out["x"] = x
    return out


def loader_workers(num_workers: int, device: torch.device) -> int:
    """DataLoader worker processes actually used: ``num_workers`` on CUDA, none on CPU.

    Every dataset is held in memory, so building a batch costs milliseconds. On CPU a worker
    only takes a core from the model's intra-op threads, and a fresh loader forks the whole
    process (~1 GB with torch) at every epoch's start, which also doubles the job's measured
    memory. Results do not depend on it: augmentation is keyed by (seed, epoch, index).
    """
    return num_workers if device.type == "cuda" else 0


def loader_options(num_workers: int, device: torch.device) -> dict[str, Any]:
    """DataLoader keywords that depend on the device: workers (:func:`loader_workers`) and
    pinned host memory on CUDA, so ``non_blocking`` copies really overlap with compute."""
    return {"num_workers": loader_workers(num_workers, device),
            "pin_memory": device.type == "cuda"}


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype: None (fp32) off CUDA or with amp off; bfloat16 where the GPU has it
    natively (Ampere and later: fp32's range, no loss scaling), else float16 with GradScaler.
    ``including_emulation=False``: by default torch also says yes on older GPUs (V100, T4) that
    only emulate bfloat16, slower than their native float16."""
    if not amp or device.type != "cuda":
        return None
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def make_eval_loader(ds: Dataset, batch_size: int, num_workers: int,
                     device: torch.device) -> DataLoader:
    # A fixed generator keeps evaluation from drawing on the global RNG (resume exactness).
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=getattr(ds, "collate", None),
        generator=torch.Generator().manual_seed(0),
        **loader_options(num_workers, device),
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

    Returns ``clip_name`` (list), ``emotion``/``sentiment`` (float32 logits),
    ``emotion_true``/``sentiment_true`` (int), ``clip_embedding`` (the mean embedding of each
    clip, clips in order of first appearance), ``loss`` (mean item loss when ``loss_fn``).
    ``amp``: autocast as in training (:func:`amp_dtype`; CUDA only), so dev predictions are
    the scores the best epoch was chosen on. A sequence model's per-step outputs go to
    ``seq_sink(seq, t_s)`` item by item (T_i×D and T_i, views into the batch: copy to keep), so
    they never pile up in memory.

    Nothing is read back to the host per batch (sequence models with a ``seq_sink`` aside):
    item outputs are copied asynchronously into (pinned) host arrays made at the first batch,
    one array of len(ds) rows each (small long-lived blocks between each batch's large freed
    temporaries kept the allocator from returning them), and embeddings are summed per clip on
    the device in float64 as batches arrive (a frame model's per-frame embeddings of a whole
    split never exist at once).
    """
    model.eval()
    total = len(ds)  # type: ignore[arg-type]
    dtype = amp_dtype(device, amp)
    pin = device.type == "cuda"
    channels_last = bool(getattr(model, "channels_last", False))
    names = getattr(ds, "clip_names", None)
    order: dict[str, int] = {}
    if names is not None and len(names) == total:
        for c in np.asarray(names, dtype=str).tolist():
            order.setdefault(c, len(order))
    host: dict[str, torch.Tensor] = {}
    res: dict[str, Any] = {"clip_name": []}

    def put(key: str, rows: torch.Tensor, start: int) -> None:
        if key not in host:
            host[key] = torch.empty((total, *rows.shape[1:]), dtype=rows.dtype, pin_memory=pin)
        host[key][start : start + len(rows)].copy_(rows, non_blocking=True)

    emb_sum: torch.Tensor | None = None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    loader = make_eval_loader(ds, batch_size, num_workers, device)
    for batch in loader:
        batch = to_device(batch, device, channels_last)
        with autocast(device, dtype):
            out = model(batch)
        b = len(batch["clip_name"])
        if loss_fn is not None:  # in fp32, as in training
            loss_sum += loss_fn(float_outputs(out), batch).double() * b
        res["clip_name"] += list(batch["clip_name"])
        for k in ("emotion", "sentiment"):
            put(k, out[k].float(), n)
        put("emotion_true", batch["emotion"], n)
        put("sentiment_true", batch["sentiment"], n)
        inv = torch.tensor([order.setdefault(c, len(order)) for c in batch["clip_name"]],
                           dtype=torch.long)
        # Pinned, so the copy is asynchronous (from pageable memory it waits for the GPU).
        inv = (inv.pin_memory() if pin else inv).to(device, non_blocking=True)
        emb = out["embedding"].double()
        if emb_sum is None or len(order) > len(emb_sum):
            rows = max(len(order), total if names is None else len(order))
            grown = emb.new_zeros((rows, *emb.shape[1:]))
            if emb_sum is not None:
                grown[: len(emb_sum)] = emb_sum
            emb_sum = grown
        emb_sum.index_add_(0, inv, emb)
        n += b
        if seq_sink is not None and "seq" in out:
            lengths = batch["lengths"].numpy()  # kept on the host (HOST_KEYS)
            seq = out["seq"].float().cpu().numpy()
            t_s = batch["t_s"].cpu().numpy()
            for i in range(b):
                seq_sink(seq[i, : lengths[i]], t_s[i, : lengths[i]])
    if n != total:
        raise TrainingError(f"{getattr(ds, 'split', 'dataset')}: the loader gave {n} items, "
                            f"the dataset has {total}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the asynchronous copies into host memory are done
    for k, v in host.items():
        res[k] = v.numpy()
    seen = list(dict.fromkeys(res["clip_name"]))
    if emb_sum is not None:
        idx = [order[c] for c in seen]
        counts = np.bincount(_group(res["clip_name"])[1], minlength=len(seen))
        # float64 sums in item order divided by the counts, then float32: numpy's
        # mean_by_clip arithmetic, done as the batches arrive.
        sums = emb_sum[torch.tensor(idx, dtype=torch.long, device=emb_sum.device)].cpu()
        res["clip_embedding"] = (sums.numpy() / counts[:, None]).astype(np.float32)
    res["loss"] = float(loss_sum) / max(n, 1)
    return res


def float_outputs(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Logits in float32 for the loss: under autocast they are half precision, and the loss
    and its statistics belong in fp32 (a no-op without autocast)."""
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in out.items()}


def eval_options(settings: Any, num_workers: int) -> dict[str, Any]:
    """What prediction and export take from the engine settings (an ``EngineSettings``): the
    device, the batch size and amp of the dev evaluation that chose the best epoch (so
    ``predictions_dev`` holds those very scores) and the job's loader workers."""
    return {"device": settings.device, "batch_size": settings.batch_size,
            "num_workers": num_workers, "amp": settings.amp}


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
    """Aggregate collect_outputs' items to clips: probabilities, true labels, embeddings
    (``clip_embedding`` as collected, or the mean of item ``embedding`` rows)."""
    clips, inv = _group(res["clip_name"])
    n = len(clips)
    first = np.unique(inv, return_index=True)[1]  # labels are per clip, take the first item
    emb = res["clip_embedding"] if "clip_embedding" in res else mean_by_clip(
        res["embedding"], inv, n)
    return {
        "clip_name": clips,
        "p_emotion": aggregate_probs(res["emotion"], inv, n, how),
        "p_sentiment": aggregate_probs(res["sentiment"], inv, n, how),
        "emotion_true": res["emotion_true"][first],
        "sentiment_true": res["sentiment_true"][first],
        "embedding": emb,
    }


def predict(
    model: nn.Module,
    ds: Dataset,
    device: str | torch.device = "auto",
    *,
    aggregate: str = "mean",
    batch_size: int = 64,
    num_workers: int = 0,
    amp: bool = False,
) -> pd.DataFrame:
    """One row per clip: ``clip_name, emotion, sentiment`` (true labels) and
    ``p_emotion_<label>`` × 7, ``p_sentiment_<label>`` × 3, clips in dataset order.
    The stages pass the engine's batch size, workers and amp (:func:`eval_options`)."""
    dev = resolve_device(device)
    model.to(dev)
    clip = clip_level(
        collect_outputs(model, ds, dev, batch_size=batch_size, num_workers=num_workers,
                        amp=amp),
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
    amp: bool = False,
) -> None:
    """Write ``embeddings_{split}.npz`` at ``path``: ``clip_name`` (str), ``emb`` (N×D float32,
    frame models: mean over the clip's frames); sequence models add ``seq`` (N×T×D, zero
    padded), ``lengths`` (N) and ``t_s`` (N×T, NaN padded)."""
    dev = resolve_device(device)
    model.to(dev)
    path = Path(path)
    with _SeqSpill(path.parent) as spill:
        res = collect_outputs(model, ds, dev, batch_size=batch_size, num_workers=num_workers,
                              amp=amp, seq_sink=spill.add)
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
