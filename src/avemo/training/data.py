"""Torch Datasets with one batch format for every model.

Batch dict: ``x`` (float tensor; frames: uint8 [...,3,H,W], with ``jitter`` (float [B]) on
augmented splits, which the engine's ``to_device`` normalises on the device), ``emotion`` /
``sentiment`` (long [B]), ``clip_name`` (list[str]); sequence datasets add ``mask`` (bool
[B,T], True = valid step), ``lengths`` (long [B], kept on the host), ``valid_idx`` (long, the
flat indices b*T+t of valid steps) and ``t_s`` (float [B,T], NaN on padding). These classes
know nothing of file formats: adapters turn FrameStore/AudioStore + manifest into their
arrays, or into ``LazyItems`` that read each item from its store when the loader asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avemo.errors import TrainingError

# ImageNet statistics: VGG-16 weights expect them, and they are harmless for from-scratch CNNs.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _check_labels(
    n: int, clip_names: Sequence[str], emotion_idx: Any, sentiment_idx: Any, split: str, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n == 0:
        raise TrainingError(
            f"the {split} split has no {what}: likely every clip of {split} failed QC or the "
            f"feature stage produced nothing for it; check manifest/qc.csv and the {split} "
            "feature folders, then rerun the stages before training"
        )
    names = np.asarray(clip_names, dtype=str)
    emo = np.asarray(emotion_idx, dtype=np.int64)
    sent = np.asarray(sentiment_idx, dtype=np.int64)
    if not (len(names) == len(emo) == len(sent) == n):
        raise TrainingError(
            f"{split}: {n} {what} but {len(names)} clip names, {len(emo)} emotion and "
            f"{len(sent)} sentiment labels; the arrays must align row by row"
        )
    return names, emo, sent


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one item's augmentation, keyed by (seed, epoch, sample index).

    Never the global RNG nor a worker's: the draws are the same whichever process (main or a
    DataLoader worker, however many) loads the item, so results do not depend on the core count.
    """
    key = ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) % (2**63 - 1)
    return torch.Generator().manual_seed(key)


def frames_to_tensor(frames: np.ndarray, augment: bool,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [...,H,W,3] -> ImageNet-normalised float [...,3,H,W]; light augmentation if asked,
    drawn from ``generator`` (``item_generator``). The reference for what the loaders now do in
    two halves: :func:`frames_to_uint8` in the workers, ``predict.normalize_frames`` on the
    device (tests check the two give equal values)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    x = x.movedim(-1, -3)
    if augment:
        if torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        jitter = 0.8 + 0.4 * torch.rand((), generator=generator)
        x = (x * jitter).clamp_(0.0, 1.0)  # brightness
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def frames_to_uint8(frames: np.ndarray, augment: bool, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 [...,H,W,3] -> (uint8 [...,3,H,W], brightness factor or None): the item as the
    loader ships it, a quarter of float32's bytes through shared memory and to the GPU; the
    engine normalises it on the device. Same draws, in the same order, as
    :func:`frames_to_tensor`."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3)
    jitter = None
    if augment:
        if torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        jitter = 0.8 + 0.4 * torch.rand((), generator=generator)
    return x.contiguous(), jitter


class LazyItems(Sequence):
    """Items read on access: ``items[i] = read(keys[i])``, with ``lengths[i]`` its number of
    rows known up front. The adapters use it so that a dataset holds no array that grows with
    the corpus: each item is read from its store when the loader asks for it. Picklable when
    ``read`` is (a bound method of a picklable store)."""

    def __init__(self, read: Callable[[Any], np.ndarray], keys: Sequence[Any],
                 lengths: Sequence[int] | None = None) -> None:
        self.read, self.keys = read, list(keys)
        self.lengths = (np.ones(len(self.keys), np.int64) if lengths is None
                        else np.asarray(lengths, np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self.read(self.keys[i])


def _lengths(seqs: Sequence[Any]) -> np.ndarray:
    if isinstance(seqs, LazyItems):
        return seqs.lengths
    return np.array([len(s) for s in seqs], np.int64)


class _Base(Dataset):
    """Shared label bookkeeping; ``emotion_idx`` is per item (used for weights and sampling)."""

    clip_names: np.ndarray
    emotion_idx: np.ndarray
    sentiment_idx: np.ndarray
    split: str
    _epoch_key: tuple[int, int] = (0, 0)

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Key this epoch's augmentation (the engine calls it before each epoch's loader)."""
        self._epoch_key = (seed, epoch)

    def _generator(self, i: int) -> torch.Generator:
        return item_generator(*self._epoch_key, i)

    def _labels(self, i: int) -> dict[str, Any]:
        return {
            "emotion": int(self.emotion_idx[i]),
            "sentiment": int(self.sentiment_idx[i]),
            "clip_name": str(self.clip_names[i]),
        }

    def __len__(self) -> int:
        return len(self.clip_names)

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = {
            "x": torch.stack([it["x"] for it in items]),
            "emotion": torch.tensor([it["emotion"] for it in items], dtype=torch.long),
            "sentiment": torch.tensor([it["sentiment"] for it in items], dtype=torch.long),
            "clip_name": [it["clip_name"] for it in items],
        }
        if "jitter" in items[0]:  # uint8 frames' brightness factors (augmented splits)
            batch["jitter"] = torch.stack([it["jitter"] for it in items]).float()
        return batch

    @staticmethod
    def _frame_item(x: torch.Tensor, jitter: torch.Tensor | None) -> dict[str, Any]:
        return {"x": x} if jitter is None else {"x": x, "jitter": jitter}


class FrameDataset(_Base):
    """One item per frame: ``frames`` uint8 N×H×W×3 (an array, or ``LazyItems`` of frames),
    labels per frame."""

    def __init__(
        self,
        frames: np.ndarray,
        clip_names: Sequence[str],
        emotion_idx: Any,
        sentiment_idx: Any,
        *,
        augment: bool = False,
        split: str = "train",
    ) -> None:
        self.split = split
        self.clip_names, self.emotion_idx, self.sentiment_idx = _check_labels(
            len(frames), clip_names, emotion_idx, sentiment_idx, split, "frames"
        )
        self.frames = frames
        self.augment = augment

    def __getitem__(self, i: int) -> dict[str, Any]:
        x, jitter = frames_to_uint8(self.frames[i], self.augment,
                                    self._generator(i) if self.augment else None)
        return {**self._frame_item(x, jitter), **self._labels(i)}


class VectorDataset(_Base):
    """One item per clip: ``x`` float N×D (utterance audio vectors).

    ``valid`` (bool N, optional) marks rows whose features are real; invalid rows (zeros for
    clips without audio) are left out of the standardisation statistics.
    """

    def __init__(
        self,
        x: np.ndarray,
        clip_names: Sequence[str],
        emotion_idx: Any,
        sentiment_idx: Any,
        *,
        valid: np.ndarray | None = None,
        split: str = "train",
    ) -> None:
        self.split = split
        self.clip_names, self.emotion_idx, self.sentiment_idx = _check_labels(
            len(x), clip_names, emotion_idx, sentiment_idx, split, "clips"
        )
        self.x = np.asarray(x, dtype=np.float32)
        self.valid = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std over valid rows (train split -> model standardiser)."""
        rows = self.x[self.valid] if self.valid.any() else self.x
        return rows.mean(0, dtype=np.float64), rows.std(0, dtype=np.float64)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": torch.from_numpy(self.x[i].copy()), **self._labels(i)}


def _pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = torch.tensor([it["x"].shape[0] for it in items], dtype=torch.long)
    t_max = int(lengths.max())
    first = items[0]["x"]
    x = first.new_zeros((len(items), t_max, *first.shape[1:]))
    t_s = torch.full((len(items), t_max), float("nan"))
    for b, it in enumerate(items):
        n = it["x"].shape[0]
        x[b, :n] = it["x"]
        t_s[b, :n] = it["t_s"]
    batch = _Base.collate([{**it, "x": torch.empty(0)} for it in items])
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    # Built here on the host: the models' valid-frame gather then needs no GPU read-back.
    batch.update(x=x, mask=mask, lengths=lengths, t_s=t_s,
                 valid_idx=mask.flatten().nonzero().squeeze(1))
    return batch


class SequenceDataset(_Base):
    """One item per clip: a variable-length float sequence T_i×D (log-mel frames, SSL
    embeddings or precomputed per-frame features). Collate pads and returns a mask."""

    def __init__(
        self,
        seqs: Sequence[np.ndarray],
        clip_names: Sequence[str],
        emotion_idx: Any,
        sentiment_idx: Any,
        *,
        t_s: Sequence[np.ndarray] | None = None,
        max_len: int | None = None,
        split: str = "train",
    ) -> None:
        self.split = split
        self.clip_names, self.emotion_idx, self.sentiment_idx = _check_labels(
            len(seqs), clip_names, emotion_idx, sentiment_idx, split, "sequences"
        )
        lengths = _lengths(seqs)
        empty = [str(self.clip_names[i]) for i in np.flatnonzero(lengths == 0)]
        if empty:
            raise TrainingError(
                f"{split}: {len(empty)} empty sequences (first: {empty[0]}); drop those clips "
                "in the adapter (they should carry a QC reason)"
            )
        self.seqs = seqs if isinstance(seqs, LazyItems) else list(seqs)
        self.lengths = lengths
        self.t_s = list(t_s) if t_s is not None else None
        self.max_len = max_len  # longer sequences are cut evenly (keeps memory bounded)

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std over all steps of all sequences, in two passes of
        float64 sums one sequence at a time (as numpy's mean and std): concatenating every
        step first made the largest array of the job grow with the corpus (MELD's train
        log-mels: 0.8 GB, their deviations in float64 another 1.6 GB)."""
        n = int(self.lengths.sum())
        if n == 0:
            raise TrainingError(f"{self.split}: no sequence steps to compute input statistics")
        total = sum(np.asarray(s, dtype=np.float64).sum(0) for s in self.seqs)
        mean = total / n
        squares = sum(np.square(np.asarray(s, dtype=np.float64) - mean).sum(0)
                      for s in self.seqs)
        return mean, np.sqrt(squares / n)

    def _steps(self, n: int) -> np.ndarray:
        if self.max_len is None or n <= self.max_len:
            return np.arange(n)
        return np.linspace(0, n - 1, self.max_len).round().astype(np.int64)

    def _times(self, i: int, idx: np.ndarray) -> torch.Tensor:
        if self.t_s is None:
            return torch.from_numpy(idx.astype(np.float32))  # step index when no times given
        return torch.from_numpy(np.asarray(self.t_s[i], dtype=np.float32)[idx])

    def __getitem__(self, i: int) -> dict[str, Any]:
        seq = self.seqs[i]
        idx = self._steps(len(seq))
        x = torch.from_numpy(np.asarray(seq, dtype=np.float32)[idx])
        return {"x": x, "t_s": self._times(i, idx), **self._labels(i)}

    collate = staticmethod(_pad_collate)


class ClipSequenceDataset(SequenceDataset):
    """One item per clip: its frames uint8 T_i×H×W×3 (normalised like FrameDataset) or
    per-frame features T_i×D float; padded collate with mask."""

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        clip_names: Sequence[str],
        emotion_idx: Any,
        sentiment_idx: Any,
        *,
        t_s: Sequence[np.ndarray] | None = None,
        augment: bool = False,
        max_len: int | None = None,
        split: str = "train",
    ) -> None:
        super().__init__(
            clips, clip_names, emotion_idx, sentiment_idx, t_s=t_s, max_len=max_len, split=split
        )
        self.augment = augment

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip = self.seqs[i]
        idx = self._steps(len(clip))
        if np.asarray(clip[:1]).dtype == np.uint8 and np.ndim(clip) == 4:
            x, jitter = frames_to_uint8(np.asarray(clip)[idx], self.augment,
                                        self._generator(i) if self.augment else None)
            item = self._frame_item(x, jitter)
        else:
            item = {"x": torch.from_numpy(np.asarray(clip, dtype=np.float32)[idx])}
        return {**item, "t_s": self._times(i, idx), **self._labels(i)}
