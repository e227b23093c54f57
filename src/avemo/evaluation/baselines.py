"""Trivial baselines from the train label distribution, as ordinary prediction frames.

Both baselines emit one-hot probabilities in the predictions format of docs/formats.md
section 5, so their numbers come out of exactly the same metrics and bootstrap code as the
models' (``evaluate.evaluate_model``):

- majority: always the most frequent train class (neutral for both tasks on MELD);
- prior: a class drawn per utterance from the train label prior with a fixed seed.

``expected_baseline_metrics`` gives their analytic (large-sample) accuracy and weighted F1 for
a sanity line in the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from avemo.atomic import atomic_path
from avemo.errors import DataStageError
from avemo.evaluation.metrics import TASKS, prob_columns


def label_prior(labels: pd.Series, task: str) -> np.ndarray:
    """Class frequencies of ``labels`` in the label order of ``task`` (sums to 1)."""
    names = TASKS[task]
    values = labels.astype(str).str.lower()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataStageError(f"unknown {task} labels {unknown}; expected one of {list(names)}")
    if values.empty:
        raise DataStageError(f"no {task} labels to estimate a prior from: the train split is empty")
    counts = values.value_counts().reindex(list(names), fill_value=0).to_numpy(dtype=np.float64)
    return counts / counts.sum()


def _frame(target: pd.DataFrame, predicted: dict[str, np.ndarray]) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "clip_name": target["clip_name"].astype(str).to_numpy(),
            "emotion": target["emotion"].astype(str).str.lower().to_numpy(),
            "sentiment": target["sentiment"].astype(str).str.lower().to_numpy(),
        }
    )
    for task, labels in TASKS.items():
        onehot = np.eye(len(labels), dtype=np.float32)[predicted[task]]
        for j, col in enumerate(prob_columns(task)):
            out[col] = onehot[:, j]
    return out


def majority_predictions(train: pd.DataFrame, target: pd.DataFrame,
                         seed: int = 0) -> pd.DataFrame:
    """Predict the most frequent train class of each task for every row of ``target``.

    ``train`` needs ``emotion, sentiment``; ``target`` needs ``clip_name, emotion, sentiment``.
    Ties go to the earlier label (neutral first).
    """
    predicted = {
        task: np.full(len(target), int(np.argmax(label_prior(train[task], task))), dtype=np.int64)
        for task in TASKS
    }
    return _frame(target, predicted)


def prior_predictions(train: pd.DataFrame, target: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Predict a class drawn from the train prior, independently per utterance and task."""
    rng = np.random.default_rng(seed)
    predicted = {
        task: rng.choice(len(labels), size=len(target), p=label_prior(train[task], task))
        for task, labels in TASKS.items()
    }
    return _frame(target, predicted)


def expected_baseline_metrics(train_prior: np.ndarray, target_prior: np.ndarray) -> dict[str, Any]:
    """Analytic accuracy and weighted F1 of both baselines for one task.

    With target class frequencies ``p`` and train prior ``q`` (m = argmax q):

    - majority: accuracy = p_m; F1_m = 2 p_m / (1 + p_m) (precision p_m, recall 1), every other
      F1 is 0, so weighted F1 = p_m · 2 p_m / (1 + p_m). Exact.
    - prior: per class precision ≈ p_k, recall ≈ q_k, so F1_k ≈ 2 p_k q_k / (p_k + q_k),
      weighted F1 ≈ Σ p_k F1_k and accuracy = Σ p_k q_k (expectation; the F1 is the ratio of
      expected counts, exact as the number of utterances grows).
    """
    p = np.asarray(target_prior, dtype=np.float64)
    q = np.asarray(train_prior, dtype=np.float64)
    m = int(np.argmax(q))
    denom = p + q
    f1_prior = np.divide(2.0 * p * q, denom, out=np.zeros_like(p), where=denom > 0)
    return {
        "majority": {
            "class_index": m,
            "accuracy": float(p[m]),
            "weighted_f1": float(p[m] * 2.0 * p[m] / (1.0 + p[m])),
        },
        "prior": {
            "accuracy": float((p * q).sum()),
            "weighted_f1": float((p * f1_prior).sum()),
        },
    }


def _read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    # Imported lazily: the manifest module is another stage's reader (docs/formats.md section 2).
    from avemo.manifest import read_manifest

    return read_manifest(path)


def write_baseline_predictions(
    predict: Callable[..., pd.DataFrame],
    name: str,
    train_manifest: str | os.PathLike[str],
    target_manifest: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    seed: int = 0,
    ok_only: bool = True,
) -> dict[str, Any]:
    """Stage: write the predictions of baseline ``name`` (``predict(train, target, seed=)``,
    its registry factory) for one split.

    The prior comes from ``train_manifest``; rows come from ``target_manifest``. With
    ``ok_only`` both keep only rows with ``ok`` (the utterances the models are trained on and
    scored on). Returns ``{kind, n, train_prior: {task: [..]}}``.
    """
    train = _read_manifest(train_manifest)
    target = _read_manifest(target_manifest)
    if ok_only:
        train = train[train["ok"].astype(bool)]
        target = target[target["ok"].astype(bool)]
    if target.empty:
        raise DataStageError(f"{target_manifest} has no usable rows to predict")
    preds = predict(train, target, seed=seed)
    with atomic_path(out_path) as tmp:
        preds.to_parquet(tmp, index=False)
    return {
        "kind": name,
        "n": int(len(preds)),
        "train_prior": {t: label_prior(train[t], t).tolist() for t in TASKS},
    }
