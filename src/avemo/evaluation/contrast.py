"""A contrast of several models' scores on one paired resampling: a design's effect.

A factorial design's effect is ``sum_m c_m score(m)`` over its runs (avemo.evaluation.design):
a main effect compares the mean of the runs at one level with the mean at the other. Its
uncertainty comes from the same dialogue x seed bootstrap as a pair's: every replicate draws the
test dialogues once for every model and, with ``paired_seeds``, the training seeds once too
(variant seed s of every run is built on stream seed s), so the contrast is evaluated on each
replicate exactly as a paired difference is, and the protocol's interval, p, TOST and verdict
apply unchanged. A pair ``a - b`` is the contrast ``{a: 1, b: -1}``.

``contrast_comparison`` returns the compare.json entry of one contrast (not written)::

    {"name", "weights": {model: c}, "models": [...], "n", "n_dialogues", "too_small",
     "seeds": [...],                       # the training seeds every model was scored on
     "dropped": {"<model> seed <n>": <utterances left out by common_only>, ...},
     "tests": {task: {metric: {"delta", "ci_low", "ci_high", "p_value", "significant",
                                "p_tost"?}}}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import DataStageError
from avemo.evaluation.bootstrap import (
    cluster_bootstrap,
    dialogue_ids,
    metric_value,
    paired_test_from_samples,
)
from avemo.evaluation.evaluate import (
    MIN_DIALOGUES,
    MIN_UTTERANCES,
    _bootstrap_meta,
    _size,
    load_scored,
)
from avemo.evaluation.metrics import HEADLINE_METRICS, TASKS, truth_and_prediction
from avemo.evaluation.verdicts import tost_p

PathLike = str | os.PathLike[str]


def contrast_comparison(
    paths: Mapping[str, Mapping[Any, PathLike]],
    weights: Mapping[str, float],
    name: str,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    common_only: bool = True,
    min_utterances: int = MIN_UTTERANCES,
    min_dialogues: int = MIN_DIALOGUES,
    margin: float | None = None,
    paired_seeds: bool = True,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The contrast ``sum_m weights[m] * seed-mean metric(m)`` of every headline metric, with
    its bootstrap replicates ``{task: {metric: samples}}`` (for intervals over a family).

    ``paths``: ``{model: {seed: predictions_test.parquet}}`` for every model of ``weights``.
    Seeds are paired only when every model has the same seeds (DataStageError otherwise, when
    ``paired_seeds``: a contrast over unpaired runs is not what the design estimates).
    """
    if not weights:
        raise DataStageError(f"contrast {name!r} has no models")
    lacking = [m for m in weights if m not in paths or not paths[m]]
    if lacking:
        raise DataStageError(f"contrast {name!r}: no prediction files for {lacking}; train "
                             "them (they are runs of the diagnosis' design)")
    seeds = {m: sorted(int(s) for s in paths[m]) for m in weights}
    first = next(iter(seeds.values()))
    if paired_seeds and any(s != first for s in seeds.values()):
        raise DataStageError(f"contrast {name!r}: its models were trained on different seeds "
                             f"({seeds}); train every run on the same train.seeds")
    files = {f"{m} seed {s}": Path(paths[m][s] if s in paths[m] else paths[m][str(s)])
             for m in weights for s in seeds[m]}
    frames, dropped = load_scored(files, common_only, f"the models of contrast {name!r}")
    boot = _bootstrap_meta(n_resamples, seed, alpha, min_utterances, min_dialogues)
    paired = bool(paired_seeds) and len(first) > 1
    ref = next(iter(frames.values()))
    clusters = dialogue_ids(ref["clip_name"])
    size = _size(ref["clip_name"], boot)
    models = list(weights)
    c = np.array([float(weights[m]) for m in models])
    tests: dict[str, Any] = {}
    deltas: dict[str, dict[str, np.ndarray]] = {}
    for task, labels in TASKS.items():
        y_true = truth_and_prediction(ref, task)[0]
        groups = [[truth_and_prediction(frames[f"{m} seed {s}"], task)[1] for s in seeds[m]]
                  for m in models]
        samples = cluster_bootstrap(y_true, groups, HEADLINE_METRICS, clusters,
                                    boot["n_resamples"], boot["seed"], len(labels),
                                    paired_seeds=paired)  # models × metrics × B
        tests[task], deltas[task] = {}, {}
        for j, metric in enumerate(HEADLINE_METRICS):
            points = np.array([np.mean([metric_value(y_true, p, metric, len(labels))
                                        for p in g]) for g in groups])
            d = np.tensordot(c, samples[:, j], axes=(0, 0))
            test = paired_test_from_samples(float(c @ points), d, alpha)
            if margin:
                test["p_tost"] = tost_p(d, margin)
            if size["too_small"]:
                test["significant"] = None
            tests[task][metric] = test
            deltas[task][metric] = d
    entry = {
        "name": name,
        "weights": {m: float(weights[m]) for m in models},
        "models": models,
        "n": int(len(ref)),
        "n_dialogues": size["n_dialogues"],
        "too_small": size["too_small"],
        "seeds": first,
        "dropped": dropped,
        "tests": tests,
        "paired_seeds": paired,
    }
    return entry, deltas
