"""Multi-task loss: weighted emotion + sentiment cross-entropy, with class-imbalance options."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import WeightedRandomSampler

from avemo.errors import TrainingError

IMBALANCE = ("none", "class_weight", "focal", "sampler")


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)


def inverse_frequency_weights(counts: np.ndarray) -> torch.Tensor:
    """w_c = N / (K * n_c): the mean weight per training item is 1, rare classes count more.

    A class absent from train gets the weight of a class seen once (it never occurs in the
    train loss anyway).
    """
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    w = counts.sum() / (len(counts) * counts)
    return torch.tensor(w, dtype=torch.float32)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean of -(1 - p_t)^gamma log p_t (gamma=0 is cross-entropy)."""
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)
    return (-((1.0 - logp.exp()) ** gamma) * logp).mean()


def balanced_sampler(
    labels: np.ndarray, n_classes: int, generator: torch.Generator
) -> WeightedRandomSampler:
    """Draw items with probability ∝ 1/count(class): every class equally often on average."""
    labels = np.asarray(labels, dtype=np.int64)
    per_item = 1.0 / np.maximum(class_counts(labels, n_classes), 1)[labels]
    return WeightedRandomSampler(
        torch.as_tensor(per_item, dtype=torch.double),
        num_samples=len(labels),
        replacement=True,
        generator=generator,
    )


class MultiTaskLoss(nn.Module):
    """``w_emotion * L(emotion) + w_sentiment * L(sentiment)``.

    A task with weight 0 is not computed at all, so its head gets no gradient (single-task).
    ``imbalance``: ``class_weight`` weights CE by inverse train frequency (counts required),
    ``focal`` uses focal loss with ``focal_gamma``, ``sampler``/``none`` use plain CE (the
    sampler itself is built by the engine).
    """

    def __init__(
        self,
        w_emotion: float = 1.0,
        w_sentiment: float = 1.0,
        imbalance: str = "none",
        focal_gamma: float = 2.0,
        emotion_counts: np.ndarray | None = None,
        sentiment_counts: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if imbalance not in IMBALANCE:
            raise TrainingError(
                f"unknown imbalance option {imbalance!r}; use one of {list(IMBALANCE)} in "
                "config.yaml"
            )
        if w_emotion < 0 or w_sentiment < 0 or w_emotion + w_sentiment == 0:
            raise TrainingError(
                f"loss weights must be >= 0 and not both 0 (w_emotion={w_emotion}, "
                f"w_sentiment={w_sentiment}); fix them in config.yaml"
            )
        self.w = {"emotion": float(w_emotion), "sentiment": float(w_sentiment)}
        self.imbalance = imbalance
        self.gamma = float(focal_gamma)
        weights = {"emotion": emotion_counts, "sentiment": sentiment_counts}
        for task, counts in weights.items():
            if imbalance == "class_weight":
                if counts is None:
                    raise TrainingError("imbalance=class_weight needs the train label counts")
                self.register_buffer(f"cw_{task}", inverse_frequency_weights(counts))
            else:
                self.register_buffer(f"cw_{task}", None)

    def task_loss(self, task: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.imbalance == "focal":
            return focal_loss(logits, target, self.gamma)
        return F.cross_entropy(logits.float(), target, weight=getattr(self, f"cw_{task}"))

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for task, w in self.w.items():
            if w == 0:
                continue
            term = w * self.task_loss(task, out[task], batch[task])
            total = term if total is None else total + term
        assert total is not None  # guaranteed by the weight check
        return total
