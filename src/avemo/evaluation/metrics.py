"""Classification metrics for one task, and the reader of per-utterance prediction files.

Every table of the report is built from these numbers, so there is one definition of each:

- ``weighted_f1``: per-class F1 averaged with weights = true support (MELD's headline metric).
- ``macro_f1``: unweighted mean of per-class F1 over ALL labels of the task (7 emotions, 3
  sentiments), a class absent from truth and predictions counting F1 = 0. A label set that
  depended on which classes a (resampled) split happens to contain would make the metric mean
  different things on different resamples and skew bootstrap intervals upward on small splits.
- ``accuracy``: fraction of utterances predicted correctly.

Per-class precision/recall/F1 use ``zero_division=0``: a class never predicted has precision 0
and F1 0, as in the MELD literature.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from avemo.errors import DataStageError
from avemo.labels import EMOTIONS, SENTIMENTS

TASKS: dict[str, tuple[str, ...]] = {"emotion": EMOTIONS, "sentiment": SENTIMENTS}
HEADLINE_METRICS: tuple[str, ...] = ("weighted_f1", "macro_f1", "accuracy")


def prob_columns(task: str) -> list[str]:
    """Probability column names of ``task`` in label order (docs/formats.md section 5)."""
    return [f"p_{task}_{label}" for label in TASKS[task]]


PREDICTION_COLUMNS: tuple[str, ...] = (
    "clip_name",
    "emotion",
    "sentiment",
    *prob_columns("emotion"),
    *prob_columns("sentiment"),
)


def _check_indices(y: np.ndarray, n_classes: int, what: str) -> None:
    if y.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{what} holds class indices outside [0, {n_classes}): fix the labels")


def task_metrics(
    y_true_idx: Sequence[int] | np.ndarray,
    y_pred_idx: Sequence[int] | np.ndarray,
    labels: tuple[str, ...],
) -> dict[str, Any]:
    """All metrics of one task from true and predicted class indices (index i = ``labels[i]``).

    Returns ``{n, accuracy, weighted_f1, macro_f1, per_class: {label: {precision, recall, f1,
    support}}, confusion, confusion_normalized, labels}``; ``confusion[i][j]`` counts utterances
    of true class i predicted as j; the normalised matrix divides each row by its support (a row
    with no support stays all zeros so the JSON holds no NaN).
    """
    y_true = np.asarray(y_true_idx, dtype=np.int64)
    y_pred = np.asarray(y_pred_idx, dtype=np.int64)
    k = len(labels)
    _check_indices(y_true, k, "y_true")
    _check_indices(y_pred, k, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no utterances to score: the prediction file is empty")
    classes = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    conf = confusion_matrix(y_true, y_pred, labels=classes)
    row_sums = conf.sum(axis=1, keepdims=True)
    conf_norm = np.divide(conf, row_sums, out=np.zeros(conf.shape), where=row_sums > 0)
    return {
        "n": int(y_true.size),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(
            f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0)
        ),
        # All labels, absent ones included (see module docstring).
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)
        ),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": conf.astype(int).tolist(),
        "confusion_normalized": conf_norm.tolist(),
        "labels": list(labels),
    }


def truth_and_prediction(df: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray]:
    """True class indices and argmax-predicted indices of ``task`` from a predictions frame."""
    labels = TASKS[task]
    index = {name: i for i, name in enumerate(labels)}
    truth = df[task].astype(str).str.lower()
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise DataStageError(
            f"predictions hold unknown {task} labels {unknown}; expected one of {list(labels)}"
        )
    y_true = truth.map(index).to_numpy(dtype=np.int64)
    probs = df[prob_columns(task)].to_numpy(dtype=np.float64)
    # argmax breaks ties towards the earlier label, deterministically.
    y_pred = probs.argmax(axis=1).astype(np.int64)
    return y_true, y_pred


def prediction_metrics(df: pd.DataFrame) -> dict[str, Any]:
    """``{"n", "emotion": task_metrics(...), "sentiment": task_metrics(...)}`` of one file."""
    out: dict[str, Any] = {"n": int(len(df))}
    for task, labels in TASKS.items():
        y_true, y_pred = truth_and_prediction(df, task)
        out[task] = task_metrics(y_true, y_pred, labels)
    return out


def read_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate one ``predictions_{split}.parquet`` (docs/formats.md section 5).

    Raises DataStageError naming the file when it is missing, unreadable, empty, lacks columns,
    repeats a clip, holds unknown labels or non-finite probabilities.
    """
    path = Path(path)
    where = f"predictions file {path}"
    if not path.is_file():
        raise DataStageError(f"{where} does not exist: run the training stage that writes it")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types; all mean "not a usable parquet"
        raise DataStageError(f"{where} cannot be read as Parquet ({exc}); rerun its stage") from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataStageError(
            f"{where} lacks columns {missing}; expected clip_name, emotion, sentiment and "
            "p_emotion_<label>/p_sentiment_<label> for every label (docs/formats.md section 5)"
        )
    if df.empty:
        raise DataStageError(f"{where} has no rows; the split it scores is empty")
    dup = df["clip_name"][df["clip_name"].duplicated()].unique().tolist()
    if dup:
        raise DataStageError(f"{where} repeats clip_name {dup[:5]}: one row per utterance")
    for task, labels in TASKS.items():
        unknown = sorted(set(df[task].astype(str).str.lower()) - set(labels))
        if unknown:
            raise DataStageError(f"{where}: unknown {task} labels {unknown}; expected {labels}")
        probs = df[prob_columns(task)].to_numpy(dtype=np.float64)
        if not np.isfinite(probs).all():
            raise DataStageError(f"{where}: non-finite p_{task}_* values; rerun the model stage")
    df = df.copy()
    df["clip_name"] = df["clip_name"].astype(str)
    for task in TASKS:
        df[task] = df[task].astype(str).str.lower()
    return df.reset_index(drop=True)


def write_confusion_pairs(predictions: str | os.PathLike[str], out_csv: str | os.PathLike[str],
                          task: str = "emotion") -> None:
    """One row per utterance, ``actual, predicted`` label names: the data of a `dvc plots`
    confusion matrix (template ``confusion``)."""
    from avemo.atomic import atomic_path

    df = read_predictions(predictions)
    labels = EMOTIONS if task == "emotion" else SENTIMENTS
    truth, pred = truth_and_prediction(df, task)
    pairs = pd.DataFrame({"actual": [labels[i] for i in truth],
                          "predicted": [labels[i] for i in pred]})
    with atomic_path(out_csv) as tmp:
        pairs.to_csv(tmp, index=False)
