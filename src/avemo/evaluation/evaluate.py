"""Stages that turn prediction files into ``metrics/{model}.json`` and model comparisons.

``evaluate_model`` writes (docs/formats.md section 6; every float is a plain JSON number, never
NaN; seeds are string keys because JSON keys are strings)::

    {
      "schema_version": 2,
      "model": "cnn5",
      "n_seeds": <training seeds scored>,
      "labels": {"emotion": [7 names], "sentiment": [3 names]},
      "headline_metrics": ["weighted_f1", "macro_f1", "accuracy"],
      "seeds": {"0": {"dev": M, "test": M}, ...},   # M = metrics.prediction_metrics:
          # {"n", "emotion": T, "sentiment": T}, T = metrics.task_metrics:
          # {n, accuracy, weighted_f1, macro_f1, per_class: {label: {precision, recall, f1,
          #  support}}, confusion, confusion_normalized, labels}
      "aggregate": {"dev"|"test": {"emotion"|"sentiment": {
          "weighted_f1"|"macro_f1"|"accuracy": {"mean", "std", "n"},
              # over seeds, ddof=1; std is null with one seed (no spread to report)
          "per_class_f1": {label: {"mean", "std", "n"}},
          "confusion_normalized_mean": K×K (mean over seeds of the row-normalised matrices)}}},
      "ci": {"test"|"test_no_audio"|...: {       # every split whose name starts with "test"
          "n_utterances", "n_dialogues",          # fewest over the seeds' files
          "too_small": bool,   # n_utterances < min_utterances or n_dialogues < min_dialogues:
                               # the intervals are printed but carry no statistical weight
          "per_seed": {"0": {"emotion": {"weighted_f1": {"point", "low", "high"}, ...}}},
              # dialogue bootstrap of that seed's metric
          "mean_over_seeds": {"emotion": {"weighted_f1": {"point", "low", "high"}, ...}}
              # dialogue x seed bootstrap of the seed-mean (each replicate draws dialogues and
              # seeds with replacement); null when the seeds' files hold different utterances
      }},
      "subsets": {"audio_missing": {"test": S, "test_no_video": S, ...}, ...},
          # only with evaluate_model(subsets=...): the same test-like splits restricted to the
          # subset's clips; S = {"n": <clips found>, "seeds", "aggregate", "ci"} laid out like
          # the top level for that one split, or {"n": 0} when no clip of the subset is there
      "bootstrap": {"n_resamples", "seed", "alpha", "method", "unit", "min_utterances",
                    "min_dialogues"}
    }

No output stores a file path (the same run in two folders gives byte-identical JSON): the seeds
and splits say which prediction files were scored. Split names come from the file names:
``predictions_test_no_audio.parquet`` is split ``test_no_audio`` (the fusion stage's modality
ablations). Variants of a model (e.g. the single-task run of a fusion model) are ordinary models
named ``<model>@<variant>`` (``naming.variant_name``), so they get their own
``metrics/<model>@<variant>.json``.

``compare_models`` writes::

    {
      "schema_version": 2, "models": [name_a, name_b], "n": <test utterances>,
      "n_dialogues": <dialogues among them>, "too_small": bool,
      "seeds": {"a": [...], "b": [...]},
      "dropped": {"<name> seed <n>": <utterances left out by common_only>, ...},
      "tests": {task: {metric: {"a", "b", "delta", "ci_low", "ci_high", "p_value",
          "significant"}}},
          # a, b: seed-mean metric; delta = a - b; dialogue x seed paired bootstrap of the
          # seed-means (shared dialogue draws, each model's seeds drawn independently);
          # CI and p from the same distribution: significant == (p < alpha) == CI excludes 0;
          # significant is null when too_small (no verdict)
      "per_seed": {"<seed in both>": {task: {metric: {...same keys...}}}},
      "bootstrap": {...}
    }
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.atomic import write_json
from avemo.errors import DataStageError
from avemo.evaluation.bootstrap import (
    cluster_bootstrap,
    dialogue_ids,
    metric_value,
    paired_test_from_samples,
    percentile_interval,
    seed_summary,
)
from avemo.evaluation.metrics import (
    HEADLINE_METRICS,
    TASKS,
    prediction_metrics,
    read_predictions,
    truth_and_prediction,
)
from avemo.evaluation.verdicts import tost_p
from avemo.progress import progress

SCHEMA_VERSION = 2  # 2: dialogue x seed bootstrap, macro F1 over all labels, std null
CI_SPLIT = "test"


def is_test_split(split: str) -> bool:
    """Splits that get bootstrap CIs: ``test`` and its ablations (``test_no_audio``, ...)."""
    return split == CI_SPLIT or split.startswith(CI_SPLIT + "_")


PathLike = str | os.PathLike[str]


MIN_UTTERANCES = 30
MIN_DIALOGUES = 10


def _bootstrap_meta(
    n_resamples: int,
    seed: int,
    alpha: float,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
) -> dict[str, Any]:
    return {
        "n_resamples": int(n_resamples),
        "seed": int(seed),
        "alpha": float(alpha),
        "method": (
            "percentile bootstrap over dialogues (all utterances of a drawn dialogue), seeds "
            "drawn with replacement in every replicate and the metric averaged over them; "
            "paired: shared dialogue draws across models; p-value and CI from the same "
            "distribution"
        ),
        "unit": "dialogue",
        "min_utterances": int(min_utterances),
        "min_dialogues": int(min_dialogues),
    }


def _size(clip_names: Any, boot: dict[str, Any]) -> dict[str, Any]:
    """``{n_utterances, n_dialogues, too_small}`` of one scored set of clips."""
    n = int(len(clip_names))
    g = int(dialogue_ids(clip_names).max()) + 1 if n else 0
    small = n < boot["min_utterances"] or g < boot["min_dialogues"]
    return {"n_utterances": n, "n_dialogues": g, "too_small": bool(small)}


def _normalise_paths(prediction_paths: Mapping[Any, Mapping[str, PathLike]]) -> dict[int, dict]:
    if not prediction_paths:
        raise DataStageError("evaluate_model got no prediction files: train the model first")
    out: dict[int, dict[str, Path]] = {}
    for seed, splits in prediction_paths.items():
        try:
            key = int(seed)
        except (TypeError, ValueError) as exc:
            raise DataStageError(f"seed key {seed!r} is not an integer") from exc
        out[key] = {str(split): Path(p) for split, p in splits.items()}
    return dict(sorted(out.items()))


def _load_sorted(path: PathLike) -> pd.DataFrame:
    # Sorting by clip makes resampled indices refer to the same utterances in every file.
    return read_predictions(path).sort_values("clip_name", kind="stable").reset_index(drop=True)


def _check_same_utterances(frames: dict[str, pd.DataFrame]) -> str | None:
    """None when every frame scores the same clips with the same labels, else a reason."""
    items = list(frames.items())
    ref_name, ref = items[0]
    for name, df in items[1:]:
        if len(df) != len(ref) or not (df["clip_name"].to_numpy() == ref["clip_name"]).all():
            extra = sorted(set(df["clip_name"]) - set(ref["clip_name"]))[:5]
            lacking = sorted(set(ref["clip_name"]) - set(df["clip_name"]))[:5]
            return (
                f"{name} and {ref_name} score different utterances "
                f"(only in the first: {extra}, only in the second: {lacking})"
            )
        for task in TASKS:
            if not (df[task].to_numpy() == ref[task].to_numpy()).all():
                return f"{name} and {ref_name} disagree on true {task} labels"
    return None


def load_scored(files: Mapping[str, PathLike], common_only: bool, what: str
                ) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """``{label: predictions}`` sorted by clip, and ``{label: utterances left out}``: with
    ``common_only`` each file restricted to the utterances every file scores. DataStageError
    (naming ``what`` and the files) when none is common or the files disagree on the
    utterances or their labels."""
    frames = {label: _load_sorted(p) for label, p in files.items()}
    dropped = {label: 0 for label in frames}
    if common_only:
        common = set.intersection(*(set(df["clip_name"]) for df in frames.values()))
        if not common:
            raise DataStageError(f"{what} score no utterance in common")
        for label, df in frames.items():
            keep = df["clip_name"].isin(common)
            dropped[label] = int((~keep).sum())
            frames[label] = df[keep].reset_index(drop=True)
    problem = _check_same_utterances({f"{k} ({files[k]})": df for k, df in frames.items()})
    if problem:
        raise DataStageError(f"cannot compare {what}: {problem}")
    return frames, dropped


def _ci_block(
    y_true: np.ndarray,
    preds: list[np.ndarray],
    n_classes: int,
    boot: dict[str, Any],
    clusters: np.ndarray,
) -> dict[str, dict[str, float]]:
    """CIs of the seed-mean of each headline metric (one prediction vector = one seed):
    dialogues and seeds resampled together."""
    mean_samples = cluster_bootstrap(
        y_true, [preds], HEADLINE_METRICS, clusters, boot["n_resamples"], boot["seed"], n_classes
    )[0]  # metrics × B
    out = {}
    for j, metric in enumerate(HEADLINE_METRICS):
        low, high = percentile_interval(mean_samples[j], boot["alpha"])
        out[metric] = {"low": low, "high": high}
    return out


def _test_cis(
    frames: dict[int, pd.DataFrame],
    metrics: dict[int, dict[str, Any]],
    boot: dict[str, Any],
) -> dict[str, Any]:
    per_seed: dict[str, Any] = {}
    for seed, df in frames.items():
        per_seed[str(seed)] = {}
        for task, labels in TASKS.items():
            y_true, y_pred = truth_and_prediction(df, task)
            clusters = dialogue_ids(df["clip_name"])
            block = _ci_block(y_true, [y_pred], len(labels), boot, clusters)
            for metric in HEADLINE_METRICS:
                block[metric]["point"] = metrics[seed][task][metric]
            per_seed[str(seed)][task] = block
    mean_over: dict[str, Any] | None = None
    if _check_same_utterances({str(s): f for s, f in frames.items()}) is None:
        mean_over = {}
        for task, labels in TASKS.items():
            pairs = [truth_and_prediction(df, task) for df in frames.values()]
            clusters = dialogue_ids(next(iter(frames.values()))["clip_name"])
            block = _ci_block(pairs[0][0], [p for _, p in pairs], len(labels), boot, clusters)
            for metric in HEADLINE_METRICS:
                block[metric]["point"] = float(np.mean([metrics[s][task][metric] for s in frames]))
            mean_over[task] = block
    sizes = [_size(df["clip_name"], boot) for df in frames.values()]
    size = {
        "n_utterances": min(s["n_utterances"] for s in sizes),
        "n_dialogues": min(s["n_dialogues"] for s in sizes),
        "too_small": any(s["too_small"] for s in sizes),
    }
    return {**size, "per_seed": per_seed, "mean_over_seeds": mean_over}


def _aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task, labels in TASKS.items():
        block: dict[str, Any] = {
            m: seed_summary([s[task][m] for s in per_seed]) for m in HEADLINE_METRICS
        }
        block["per_class_f1"] = {
            label: seed_summary([s[task]["per_class"][label]["f1"] for s in per_seed])
            for label in labels
        }
        block["confusion_normalized_mean"] = np.mean(
            [s[task]["confusion_normalized"] for s in per_seed], axis=0
        ).tolist()
        out[task] = block
    return out


def _score(frames: dict[int, dict[str, pd.DataFrame]], boot: dict[str, Any]) -> dict[str, Any]:
    """Per-seed metrics, seed aggregates and test-split CIs of ``{seed: {split: frame}}``."""
    seeds_out: dict[str, dict[str, Any]] = {}
    splits_seen: list[str] = []
    for s, splits in frames.items():
        for split, df in splits.items():
            seeds_out.setdefault(str(s), {})[split] = prediction_metrics(df)
            if split not in splits_seen:
                splits_seen.append(split)
    aggregate = {
        split: _aggregate([seeds_out[str(s)][split] for s in frames if split in frames[s]])
        for split in splits_seen
    }
    ci = {}
    for split in splits_seen:
        if is_test_split(split):
            have = [s for s in frames if split in frames[s]]
            ci[split] = _test_cis(
                {s: frames[s][split] for s in have},
                {s: seeds_out[str(s)][split] for s in have},
                boot,
            )
    return {"seeds": seeds_out, "aggregate": aggregate, "ci": ci, "splits": splits_seen}


def _subset_block(
    frames: dict[int, dict[str, pd.DataFrame]], clips: set[str], boot: dict[str, Any]
) -> dict[str, Any]:
    """The test-like splits of ``frames`` restricted to ``clips``, scored like the whole."""
    out: dict[str, Any] = {}
    splits = {sp for per in frames.values() for sp in per if is_test_split(sp)}
    for split in sorted(splits):
        sub = {
            s: {split: per[split][per[split]["clip_name"].isin(clips)].reset_index(drop=True)}
            for s, per in frames.items()
            if split in per
        }
        n = max(len(next(iter(d.values()))) for d in sub.values())
        if n == 0:
            out[split] = {"n": 0}
            continue
        scored = _score({s: d for s, d in sub.items() if len(d[split])}, boot)
        out[split] = {"n": int(n), **{k: scored[k] for k in ("seeds", "aggregate", "ci")}}
    return out


def evaluate_model(
    model_name: str,
    prediction_paths: Mapping[Any, Mapping[str, PathLike]],
    out_json: PathLike,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    subsets: Mapping[str, Sequence[str]] | None = None,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
) -> dict[str, Any]:
    """Stage: score every prediction file of one model and write ``out_json`` atomically.

    ``prediction_paths``: ``{training_seed: {split: predictions_{split}.parquet}}`` (seed keys
    may be ints or digit strings; split names such as ``test_no_audio`` are kept as given).
    Every split gets all metrics per seed and mean/std over seeds; every test-like split
    (``test``, ``test_*``) also gets bootstrap CIs (``n_resamples``, ``seed``, ``alpha``).
    ``subsets``: ``{name: [clip_name, ...]}``, e.g. ``audio_subsets(audio/test)``; each is
    scored separately on the test-like splits (clips absent from a file are ignored).
    A test-like split with fewer than ``min_utterances`` utterances or ``min_dialogues``
    dialogues is marked ``too_small``.
    Returns a summary ``{model, seeds, splits, test_emotion_weighted_f1_mean}``.
    """
    paths = _normalise_paths(prediction_paths)
    boot = _bootstrap_meta(n_resamples, seed, alpha, min_utterances, min_dialogues)
    frames: dict[int, dict[str, pd.DataFrame]] = {}
    jobs = [(s, split, p) for s, splits in paths.items() for split, p in splits.items()]
    for s, split, path in progress(jobs, desc=f"evaluate {model_name}", unit="file", leave=False):
        frames.setdefault(s, {})[split] = _load_sorted(path)
    scored = _score(frames, boot)
    result = {
        "schema_version": SCHEMA_VERSION,
        "model": model_name,
        "n_seeds": len(paths),
        "labels": {task: list(labels) for task, labels in TASKS.items()},
        "headline_metrics": list(HEADLINE_METRICS),
        "seeds": scored["seeds"],
        "aggregate": scored["aggregate"],
        "ci": scored["ci"],
        "bootstrap": boot,
    }
    if subsets is not None:
        result["subsets"] = {
            name: _subset_block(frames, {str(c) for c in clips}, boot)
            for name, clips in subsets.items()
        }
    write_json(out_json, result)
    test_agg = scored["aggregate"].get(CI_SPLIT, {})
    return {
        "model": model_name,
        "seeds": list(paths),
        "splits": scored["splits"],
        "test_emotion_weighted_f1_mean": (
            test_agg["emotion"]["weighted_f1"]["mean"] if test_agg else None
        ),
    }


def _as_seed_paths(paths: Mapping[Any, PathLike] | PathLike) -> dict[int, Path]:
    if isinstance(paths, str | os.PathLike):
        return {0: Path(paths)}
    if not paths:
        raise DataStageError("compare_models got an empty set of prediction files")
    return {int(k): Path(v) for k, v in sorted(paths.items(), key=lambda kv: int(kv[0]))}


def _paired_block(
    y_true: np.ndarray,
    preds_a: list[np.ndarray],
    preds_b: list[np.ndarray],
    n_classes: int,
    boot: dict[str, Any],
    clusters: np.ndarray,
    too_small: bool = False,
    deltas: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Paired test of seed-mean(a) - seed-mean(b) for each headline metric: shared dialogue
    draws and seeds drawn with replacement (one draw for both models when
    ``boot["paired_seeds"]``); with ``boot["margin"]`` also the TOST p (``p_tost``) of
    ``|a - b| < margin``; no verdict when ``too_small``. ``deltas``, when given, receives each
    metric's bootstrap differences (for intervals decided later, over a family)."""
    paired = bool(boot.get("paired_seeds")) and len(preds_a) == len(preds_b)
    samples = cluster_bootstrap(
        y_true,
        [preds_a, preds_b],
        HEADLINE_METRICS,
        clusters,
        boot["n_resamples"],
        boot["seed"],
        n_classes,
        paired_seeds=paired,
    )
    out = {}
    for j, metric in enumerate(HEADLINE_METRICS):
        a = float(np.mean([metric_value(y_true, p, metric, n_classes) for p in preds_a]))
        b = float(np.mean([metric_value(y_true, p, metric, n_classes) for p in preds_b]))
        d = samples[0, j] - samples[1, j]
        test = paired_test_from_samples(a - b, d, boot["alpha"])
        if boot.get("margin"):
            test["p_tost"] = tost_p(d, boot["margin"])
        if too_small:
            test["significant"] = None
        out[metric] = {"a": a, "b": b, **test}
        if deltas is not None:
            deltas[metric] = d
    return out


def compare_models(
    paths_a: Mapping[Any, PathLike] | PathLike,
    paths_b: Mapping[Any, PathLike] | PathLike,
    names: tuple[str, str],
    out_json: PathLike,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    common_only: bool = False,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
    margin: float | None = None,
    paired_seeds: bool = False,
) -> dict[str, Any]:
    """Stage: paired bootstrap tests between two models on the same test utterances.

    ``paths_a``/``paths_b``: ``{training_seed: predictions_test.parquet}`` (or one path for a
    single seed). Files are aligned by ``clip_name``; DataStageError when any two files score
    different utterances or disagree on a true label; with ``common_only`` the files are first
    restricted to the utterances all of them score (the JSON's ``dropped`` counts, per file,
    what was left out). Tests the seed-mean of each headline
    metric (all seeds of each model) and, per seed present in both, seed against seed; the
    unit resampled is the dialogue (and, for seed-means, the seed). Fewer than
    ``min_utterances`` utterances or ``min_dialogues`` dialogues: ``too_small`` and every
    test's ``significant`` is null. ``margin``: also each test's TOST p (``p_tost``) of
    ``|a - b| < margin``; ``paired_seeds``: when both models have the same seeds, one seed
    draw per replicate serves both (seed s of a is paired with seed s of b).
    Writes ``out_json`` atomically; returns the ``tests`` block.
    """
    result, _ = paired_comparison(paths_a, paths_b, names, n_resamples, seed, alpha,
                                  common_only, min_utterances, min_dialogues, margin,
                                  paired_seeds)
    write_json(out_json, result)
    return result["tests"]


def paired_comparison(
    paths_a: Mapping[Any, PathLike] | PathLike,
    paths_b: Mapping[Any, PathLike] | PathLike,
    names: tuple[str, str],
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    common_only: bool = False,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
    margin: float | None = None,
    paired_seeds: bool = False,
    per_seed_resamples: int | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """``compare_models``' result (not written) and the bootstrap differences of the
    seed-mean tests, ``{task: {metric: deltas}}`` (for intervals decided over a family).
    ``per_seed_resamples``: resamples of the seed-against-seed tests (descriptive, no verdict
    reads them; None: ``n_resamples``)."""
    seeds_a, seeds_b = _as_seed_paths(paths_a), _as_seed_paths(paths_b)
    if names[0] == names[1]:
        raise DataStageError(f"compare_models needs two different names, got {list(names)}")
    # Labels (stored in "dropped") name model and seed; errors also name the file.
    files = {f"{names[0]} seed {s}": p for s, p in seeds_a.items()}
    files |= {f"{names[1]} seed {s}": p for s, p in seeds_b.items()}
    frames, dropped = load_scored(files, common_only, f"{names[0]} and {names[1]}")
    dfs = list(frames.values())
    dfs_a, dfs_b = dfs[: len(seeds_a)], dfs[len(seeds_a) :]
    boot = _bootstrap_meta(n_resamples, seed, alpha, min_utterances, min_dialogues)
    # Paired seeds only when both models were trained on the same seeds (same order).
    paired = bool(paired_seeds) and list(seeds_a) == list(seeds_b) and len(seeds_a) > 1
    boot["paired_seeds"] = paired
    if paired:
        boot["method"] = boot["method"].replace(
            "seeds drawn with replacement", "seeds drawn with replacement, one draw for both "
            "models (seed s of one is paired with seed s of the other)")
    if margin:
        boot["margin"] = float(margin)
    clusters = dialogue_ids(dfs_a[0]["clip_name"])
    size = _size(dfs_a[0]["clip_name"], boot)
    small = size["too_small"]
    tests: dict[str, Any] = {}
    deltas: dict[str, dict[str, np.ndarray]] = {}
    per_seed: dict[str, Any] = {str(s): {} for s in seeds_a if s in seeds_b}
    for task, labels in TASKS.items():
        y_true = truth_and_prediction(dfs_a[0], task)[0]
        preds_a = [truth_and_prediction(df, task)[1] for df in dfs_a]
        preds_b = [truth_and_prediction(df, task)[1] for df in dfs_b]
        deltas[task] = {}
        tests[task] = _paired_block(y_true, preds_a, preds_b, len(labels), boot, clusters, small,
                                    deltas[task])
        pos_a, pos_b = list(seeds_a), list(seeds_b)
        for s in per_seed:
            per_seed[s][task] = _paired_block(
                y_true,
                [preds_a[pos_a.index(int(s))]],
                [preds_b[pos_b.index(int(s))]],
                len(labels),
                {**boot, "n_resamples": per_seed_resamples or boot["n_resamples"]},
                clusters,
                small,
            )
    result = {
        "schema_version": SCHEMA_VERSION,
        "models": list(names),
        "n": int(len(dfs_a[0])),
        "n_dialogues": size["n_dialogues"],
        "too_small": small,
        "seeds": {"a": list(seeds_a), "b": list(seeds_b)},
        "dropped": dropped,
        "tests": tests,
        "per_seed": per_seed,
        "bootstrap": boot,
    }
    return result, deltas
