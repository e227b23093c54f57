"""Late fusion of one visual and one audio model's per-utterance probabilities.

``weighted``: p = w·p_visual + (1-w)·p_audio, w on a grid over [0, 1] chosen per task on the
dev split (emotion by dev emotion weighted F1, sentiment by dev sentiment weighted F1); test is
read only to apply the chosen w. ``stacking``: per task, a logistic regression on the two
streams' log-probabilities, fitted on dev. Both are fitted on dev, so their dev predictions
are out of fold (``cv_folds`` folds of dev grouped by dialogue: each fold's predictions come
from a weight or a regression chosen on the other folds), since in-sample dev scores would
flatter them; test predictions come from the fit on all of dev. Utterances scored by both
streams are kept (inner join on ``clip_name``).

A dev split of fewer than ``MIN_DEV`` utterances (a few extracted clips) leaves nothing to fit
out of fold: both methods then use the documented default, the plain average (w = 0.5), for
dev and test, and ``late.json`` carries a flag saying so (the report lists it under "Data").
A stacking task whose dev labels hold one class predicts the dev prior, also flagged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from avemo.atomic import atomic_path, write_json
from avemo.errors import DataStageError
from avemo.evaluation.metrics import TASKS, prob_columns, read_predictions
from avemo.folds import out_of_fold_folds

PathLike = str | os.PathLike[str]
METHODS = ("weighted", "stacking")
EPS = 1e-6
MIN_DEV = 2  # out-of-fold fitting needs two folds of at least one utterance each
DEFAULT_WEIGHT = 0.5  # the plain average: the fallback when dev is too small to fit anything


def _joined(visual: PathLike, audio: PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    v, a = read_predictions(visual), read_predictions(audio)
    both = v[["clip_name"]].merge(a[["clip_name"]], on="clip_name")
    if both.empty:
        raise DataStageError(
            f"{visual} and {audio} score no utterance in common; they must be predictions of "
            "the same split"
        )
    v = v.set_index("clip_name").loc[both["clip_name"]].reset_index()
    a = a.set_index("clip_name").loc[both["clip_name"]].reset_index()
    for task in TASKS:
        if not (v[task].to_numpy() == a[task].to_numpy()).all():
            raise DataStageError(f"{visual} and {audio} disagree on the true {task} labels")
    return v, a


def _truth(df: pd.DataFrame, task: str) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(TASKS[task])}
    return df[task].map(index).to_numpy(np.int64)


def _wf1(y: np.ndarray, p: np.ndarray, n: int) -> float:
    return float(
        f1_score(y, p.argmax(1), labels=list(range(n)), average="weighted", zero_division=0)
    )


def choose_weight(
    y: np.ndarray, p_visual: np.ndarray, p_audio: np.ndarray, step: float = 0.05
) -> tuple[float, dict[float, float]]:
    """The visual weight maximising weighted F1 of the mix on (y, p_*), and every grid score.

    Ties go to the weight nearest 0.5 (the plain average), the least committal choice.
    """
    grid = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    n = p_visual.shape[1]
    scores = {float(w): _wf1(y, w * p_visual + (1 - w) * p_audio, n) for w in grid}
    best = max(scores.values())
    w = min((w for w, s in scores.items() if s == best), key=lambda w: (abs(w - 0.5), w))
    return w, scores


def _features(p_visual: np.ndarray, p_audio: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.hstack([p_visual, p_audio]), EPS, 1.0))


def _full_proba(model: LogisticRegression, x: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(x), n))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _stack(
    y: np.ndarray, x_dev: np.ndarray, x_test: np.ndarray, n: int, fold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold dev probabilities, test probabilities)."""
    counts = np.bincount(y, minlength=n)
    if (counts > 0).sum() < 2:  # one class on dev: nothing to learn, predict the dev prior
        prior = counts / counts.sum()
        return np.tile(prior, (len(x_dev), 1)), np.tile(prior, (len(x_test), 1))
    model = LogisticRegression(C=1.0, max_iter=2000)
    oof = np.zeros((len(y), n))
    # A few thousand rows × 20 features: BLAS threads only contend on a shared machine.
    with threadpool_limits(1):
        for k in np.unique(fold):
            fit_rows, held = fold != k, fold == k
            if len(np.unique(y[fit_rows])) < 2:  # the other folds hold one class: its prior
                oof[held] = np.bincount(y[fit_rows], minlength=n) / fit_rows.sum()
                continue
            part = LogisticRegression(C=1.0, max_iter=2000).fit(x_dev[fit_rows], y[fit_rows])
            oof[held] = _full_proba(part, x_dev[held], n)
        model.fit(x_dev, y)
    return oof, _full_proba(model, x_test, n)


def _weighted_oof(y: np.ndarray, pv: np.ndarray, pa: np.ndarray, fold: np.ndarray,
                  step: float) -> tuple[np.ndarray, list[float]]:
    """Dev probabilities of the mix, each fold's from the weight chosen on the other folds."""
    out = np.zeros_like(pv)
    weights = []
    for k in np.unique(fold):
        held = fold == k
        w, _ = choose_weight(y[~held], pv[~held], pa[~held], step)
        out[held] = w * pv[held] + (1 - w) * pa[held]
        weights.append(w)
    return out, weights


def small_dev_flag(method: str, n_dev: int) -> dict[str, str]:
    """The report flag of a late fusion left at its default because dev is too small."""
    return {"step": f"late fusion ({method})",
            "reason": f"dev has {n_dev} utterance(s) scored by both streams; fitting out of fold "
                      f"needs at least {MIN_DEV}: the plain average (visual weight "
                      f"{DEFAULT_WEIGHT}) is used on dev and test, nothing is fitted"}


def _write(path: Path, df: pd.DataFrame, probs: dict[str, np.ndarray]) -> None:
    out = df[["clip_name", *TASKS]].copy()
    for task, p in probs.items():
        p = p / p.sum(1, keepdims=True)
        for col, values in zip(prob_columns(task), p.T, strict=True):
            out[col] = values.astype(np.float32)
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)


def late_fusion(
    visual_preds: dict[str, PathLike],
    audio_preds: dict[str, PathLike],
    out_dir: PathLike,
    method: str = "weighted",
    seed: int = 0,
    *,
    grid_step: float = 0.05,
    folds: int = 3,
) -> dict[str, Any]:
    """Fuse ``visual_preds`` and ``audio_preds`` (``{"dev": path, "test": path}``, prediction
    files of docs/formats.md section 5) into ``out_dir/predictions_{dev,test}.parquet`` and
    ``out_dir/late.json`` (method, chosen weights / folds, dev grid scores, row counts).
    ``folds``: dev folds (grouped by dialogue, drawn with ``seed``) of the out-of-fold dev
    predictions; fewer when dev has fewer dialogues.
    """
    if method not in METHODS:
        raise DataStageError(f"unknown late fusion method {method!r}; use one of {METHODS}")
    for name, files in (("visual_preds", visual_preds), ("audio_preds", audio_preds)):
        missing = {"dev", "test"} - set(files)
        if missing:
            raise DataStageError(f"late_fusion: {name} lacks splits {sorted(missing)}")
    out = Path(out_dir)
    v_dev, a_dev = _joined(visual_preds["dev"], audio_preds["dev"])
    v_test, a_test = _joined(visual_preds["test"], audio_preds["test"])
    summary: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "n_dev": len(v_dev),
        "n_test": len(v_test),
    }
    dev_p: dict[str, np.ndarray] = {}
    test_p: dict[str, np.ndarray] = {}
    flags: list[dict[str, str]] = []
    if len(v_dev) < MIN_DEV:
        # Nothing to fit out of fold (and one utterance would choose anything): the default.
        summary["dev_predictions"] = f"plain average (w = {DEFAULT_WEIGHT}), nothing fitted"
        summary["folds"] = 0
        flags.append(small_dev_flag(method, len(v_dev)))
        for task, labels in TASKS.items():
            cols = prob_columns(task)
            dev_p[task], test_p[task] = (
                DEFAULT_WEIGHT * v[cols].to_numpy(np.float64)
                + (1 - DEFAULT_WEIGHT) * a[cols].to_numpy(np.float64)
                for v, a in ((v_dev, a_dev), (v_test, a_test)))
            if method == "weighted":
                summary[f"{task}_visual_weight"] = DEFAULT_WEIGHT
            summary[f"{task}_dev_wf1"] = _wf1(_truth(v_dev, task), dev_p[task], len(labels))
    else:
        fold, how = out_of_fold_folds(v_dev["clip_name"].to_numpy(str), folds, seed)
        summary["dev_predictions"] = f"out of fold ({how} of dev)"
        summary["folds"] = int(fold.max()) + 1
        for task, labels in TASKS.items():
            flags += _fit_task(task, len(labels), method, v_dev, a_dev, v_test, a_test, fold,
                               grid_step, summary, dev_p, test_p)
    summary["flags"] = flags
    _write(out / "predictions_dev.parquet", v_dev, dev_p)
    _write(out / "predictions_test.parquet", v_test, test_p)
    write_json(out / "late.json", summary)
    return summary


def _fit_task(task: str, n: int, method: str, v_dev: pd.DataFrame, a_dev: pd.DataFrame,
              v_test: pd.DataFrame, a_test: pd.DataFrame, fold: np.ndarray, grid_step: float,
              summary: dict[str, Any], dev_p: dict[str, np.ndarray],
              test_p: dict[str, np.ndarray]) -> list[dict[str, str]]:
    """Fit one task's late fusion on dev (into ``dev_p``/``test_p``/``summary``); its flags."""
    flags = []
    cols = prob_columns(task)
    pv_d, pa_d = v_dev[cols].to_numpy(np.float64), a_dev[cols].to_numpy(np.float64)
    pv_t, pa_t = v_test[cols].to_numpy(np.float64), a_test[cols].to_numpy(np.float64)
    y = _truth(v_dev, task)  # dev truth only: test labels are never read for fitting
    if method == "weighted":
        w, scores = choose_weight(y, pv_d, pa_d, grid_step)
        dev_p[task], fold_w = _weighted_oof(y, pv_d, pa_d, fold, grid_step)
        test_p[task] = w * pv_t + (1 - w) * pa_t
        summary[f"{task}_visual_weight"] = w  # chosen on all of dev, applied to test
        summary[f"{task}_fold_visual_weights"] = fold_w
        summary[f"{task}_dev_grid_wf1"] = {f"{g:.2f}": v for g, v in scores.items()}
    else:
        if len(np.unique(y)) < 2:
            flags.append({"step": f"late fusion (stacking), {task}",
                          "reason": f"every dev utterance has the same {task} label: nothing "
                                    "to learn; the dev prior is predicted"})
        dev_p[task], test_p[task] = _stack(
            y, _features(pv_d, pa_d), _features(pv_t, pa_t), n, fold)
    # out of fold: what the report may quote as late fusion's dev score
    summary[f"{task}_dev_wf1"] = _wf1(y, dev_p[task], n)
    return flags
