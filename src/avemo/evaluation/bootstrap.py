"""Uncertainty over test dialogues and training seeds (percentile bootstrap), tests, Holm.

MELD's utterances are not independent: the utterances of one dialogue share speakers, scene and
context, and a model's errors cluster in dialogues. So the unit resampled is the *dialogue*
(``dia{D}`` of a clip named ``dia{D}_utt{U}``, ``dialogue_ids``): every bootstrap replicate
draws as many dialogues as there are, with replacement, each with all its utterances. With
several training seeds, every replicate also draws the seeds with replacement and averages the
metric over the drawn seeds, so seed variance enters every interval and every p-value.

Vectorised: a replicate is a vector of dialogue draw counts ``W`` (B×G); the confusion matrices
of all replicates are ``W @ C`` with ``C`` the per-dialogue confusion counts (G×K²), one matrix
product per prediction vector: 1,000 replicates of MELD's 2,610 test utterances (280 dialogues)
take milliseconds. Any other ``(y_true, y_pred) -> float`` callable also works (slowly) on the
same replicates, by repeating each utterance as often as its dialogue was drawn.

Replicates depend only on ``(n_dialogues, seeds per model, n_resamples, seed)``, so two models
(or two seeds of one model) scored on the same, identically ordered utterances see the same
dialogue draws: that is what makes the paired test paired.

Intervals are percentile intervals read off order statistics, and the two-sided p-value of a
difference is read off the *same* bootstrap distribution (``paired_test_from_samples``), so
"the interval excludes 0" and "p < alpha" always agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], float]

_DIALOGUE = re.compile(r"dia(\d+)_utt\d+$")


def _f1_parts(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class F1, true support and predicted count of a batch ``B×K×K`` of confusions."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support = conf.sum(axis=2)  # rows are the truth
    predicted = conf.sum(axis=1)
    denom = support + predicted
    # 2tp/(support+predicted) == 2PR/(P+R), and 0 where undefined (zero_division=0).
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1, support, predicted


def _accuracy(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf, dtype=np.float64)
    return np.trace(conf, axis1=1, axis2=2) / conf.sum(axis=(1, 2))


def _weighted_f1(conf: np.ndarray) -> np.ndarray:
    f1, support, _ = _f1_parts(conf)
    return (f1 * support).sum(axis=1) / support.sum(axis=1)


def _macro_f1(conf: np.ndarray) -> np.ndarray:
    # Same label set as metrics.task_metrics: ALL K classes, an absent class counting F1 = 0.
    f1, _, _ = _f1_parts(conf)
    return f1.mean(axis=1)


# Vectorised metrics: batch of confusion matrices (B×K×K, rows = truth) -> B values.
CONFUSION_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy,
    "weighted_f1": _weighted_f1,
    "macro_f1": _macro_f1,
}


def dialogue_ids(clip_names: Sequence[str] | np.ndarray) -> np.ndarray:
    """Cluster codes ``0..G-1`` of clips named ``dia{D}_utt{U}`` (one code per dialogue D).

    A name without that pattern is a cluster of its own (resampled like an utterance).
    """
    keys = []
    for name in np.asarray(clip_names, dtype=str):
        m = _DIALOGUE.search(name)
        keys.append(f"d{int(m.group(1))}" if m else f"u{name}")
    return np.unique(np.asarray(keys, dtype=str), return_inverse=True)[1].astype(np.int64)


def _as_index_arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length: {t.shape} vs {p.shape}")
    return t, p


def _resolve(metric_fn: str | MetricFn) -> str | MetricFn:
    if isinstance(metric_fn, str) and metric_fn not in CONFUSION_METRICS:
        raise ValueError(f"unknown metric {metric_fn!r}; use one of {sorted(CONFUSION_METRICS)}")
    return metric_fn


def _n_classes(t: np.ndarray, p: np.ndarray, n_classes: int | None) -> int:
    # Pass n_classes: macro F1 averages over all K classes, so K matters for it.
    return int(n_classes if n_classes is not None else max(t.max(), p.max()) + 1)


def metric_value(
    y_true: Any, y_pred: Any, metric_fn: str | MetricFn, n_classes: int | None = None
) -> float:
    """One metric on the full set (a CONFUSION_METRICS name or a callable)."""
    t, p = _as_index_arrays(y_true, y_pred)
    metric_fn = _resolve(metric_fn)
    if callable(metric_fn):
        return float(metric_fn(t, p))
    k = _n_classes(t, p, n_classes)
    conf = np.bincount(t * k + p, minlength=k * k).reshape(1, k, k)
    return float(CONFUSION_METRICS[metric_fn](conf)[0])


def _cluster_codes(clusters: Any, n: int) -> np.ndarray:
    if clusters is None:
        return np.arange(n, dtype=np.int64)  # every utterance its own cluster
    c = np.asarray(clusters)
    if c.shape != (n,):
        raise ValueError(f"clusters must hold one id per utterance: {c.shape} vs ({n},)")
    return np.unique(c, return_inverse=True)[1].astype(np.int64)


def cluster_bootstrap(
    y_true: Any,
    groups: Sequence[Sequence[Any]],
    metric_fns: Sequence[str | MetricFn],
    clusters: Any = None,
    n_resamples: int = 1000,
    seed: int = 0,
    n_classes: int | None = None,
    resample_seeds: bool = True,
    paired_seeds: bool = False,
) -> np.ndarray:
    """Seed-mean metric on each replicate: array ``len(groups) × len(metric_fns) × B``.

    ``groups``: one entry per model, each a list of prediction vectors (one per training seed)
    on the utterances of ``y_true``. ``clusters``: one id per utterance (``dialogue_ids``);
    None resamples utterances. Every replicate draws the clusters with replacement (shared by
    all groups: paired) and, when ``resample_seeds``, the seeds with replacement, and averages
    the metric over the drawn seeds. ``paired_seeds``: the groups' seeds are paired (position
    i of every group is the same training seed, e.g. a fusion variant's seed s is built on the
    stream models' seed s), so ONE seed draw per replicate serves every group; otherwise each
    group's seeds are drawn independently.
    """
    t = np.asarray(y_true, dtype=np.int64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("cannot bootstrap an empty set of utterances")
    if n_resamples <= 0:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("every group needs at least one prediction vector")
    preds = [[_as_index_arrays(t, p)[1] for p in g] for g in groups]
    fns = [_resolve(f) for f in metric_fns]
    k = _n_classes(t, np.concatenate([p for g in preds for p in g]), n_classes)
    codes = _cluster_codes(clusters, t.size)
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    b = int(n_resamples)
    draws = rng.integers(0, n_groups, size=(b, n_groups))
    offsets = (np.arange(b, dtype=np.int64) * n_groups)[:, None]
    weights = np.bincount((draws + offsets).ravel(), minlength=b * n_groups).reshape(b, n_groups)
    weights_f = weights.astype(np.float64)
    out = np.empty((len(preds), len(fns), b), dtype=np.float64)
    shared: np.ndarray | None = None
    if paired_seeds and resample_seeds:
        sizes = {len(g) for g in preds}
        if len(sizes) != 1:
            raise ValueError(f"paired seeds need the same number of seeds per group: {sizes}")
        s = sizes.pop()
        if s > 1:
            sd = rng.integers(0, s, size=(b, s))
            shared = np.bincount((sd + (np.arange(b) * s)[:, None]).ravel(),
                                 minlength=b * s).reshape(b, s)
    for gi, seeds in enumerate(preds):
        s = len(seeds)
        if shared is not None:
            seed_counts = shared
        elif resample_seeds and s > 1 and not paired_seeds:
            sd = rng.integers(0, s, size=(b, s))
            seed_counts = np.bincount(
                (sd + (np.arange(b) * s)[:, None]).ravel(), minlength=b * s
            ).reshape(b, s)
        else:
            seed_counts = np.ones((b, s), dtype=np.int64)
        per_seed = np.empty((s, len(fns), b), dtype=np.float64)
        for si, p in enumerate(seeds):
            conf = None
            for j, fn in enumerate(fns):
                if callable(fn):
                    utt_w = weights[:, codes]  # B×n: times each utterance is drawn
                    per_seed[si, j] = [
                        fn(t[idx], p[idx])
                        for idx in (np.repeat(np.arange(t.size), w) for w in utt_w)
                    ]
                    continue
                if conf is None:  # one matrix product serves every confusion metric
                    per_cluster = np.bincount(
                        codes * (k * k) + t * k + p, minlength=n_groups * k * k
                    ).reshape(n_groups, k * k)
                    conf = (weights_f @ per_cluster).reshape(b, k, k)
                per_seed[si, j] = CONFUSION_METRICS[fn](conf)
        # Average over the drawn seeds: sum_s count[b, s] * metric[s, b] / S.
        out[gi] = np.einsum("bs,sjb->jb", seed_counts.astype(np.float64), per_seed) / s
    return out


def bootstrap_samples(
    y_true: Any,
    y_preds: Sequence[Any],
    metric_fns: Sequence[str | MetricFn],
    n_resamples: int = 1000,
    seed: int = 0,
    n_classes: int | None = None,
    clusters: Any = None,
) -> np.ndarray:
    """Metric values on each replicate: array ``len(y_preds) × len(metric_fns) × n_resamples``.

    Every prediction vector and every metric sees the same resampled clusters (``clusters``:
    one id per utterance, e.g. ``dialogue_ids``; None resamples utterances).
    """
    return cluster_bootstrap(
        y_true, [[p] for p in y_preds], metric_fns, clusters, n_resamples, seed, n_classes
    )


def _order_rank(n: int, alpha: float) -> int:
    """1-based rank r of the lower bound ``d_(r)``: ``d_(r) > 0`` iff ``p < alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # p = 2 (1 + #{d <= 0}) / (B + 1) < alpha  <=>  #{d <= 0} < alpha (B + 1) / 2 - 1.
    x = round(alpha * (n + 1) / 2.0 - 1.0, 9)
    # With fewer than 4/alpha - 1 resamples no p-value reaches alpha; the extremes are used.
    return min(max(math.ceil(x), 1), n)


def percentile_interval(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """``(low, high)`` percentile interval at level ``1 - alpha``: the order statistics
    ``d_(r)`` and ``d_(B+1-r)``, ``r = ceil(alpha (B+1)/2 - 1)`` (the rank at which the
    two-sided bootstrap p-value of ``paired_test_from_samples`` crosses alpha)."""
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    if s.size == 0:
        raise ValueError("no bootstrap samples")
    r = _order_rank(s.size, alpha)
    return float(s[r - 1]), float(s[s.size - r])


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    metric_fn: str | MetricFn,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_classes: int | None = None,
    clusters: Any = None,
) -> tuple[float, float, float]:
    """``(point, low, high)``: metric on all utterances and its percentile bootstrap interval.

    ``metric_fn`` is ``"weighted_f1"``, ``"macro_f1"``, ``"accuracy"`` (vectorised) or any
    callable ``(y_true_idx, y_pred_idx) -> float``; ``clusters`` as in ``bootstrap_samples``.
    """
    point = metric_value(y_true, y_pred, metric_fn, n_classes)
    samples = bootstrap_samples(
        y_true, [y_pred], [metric_fn], n_resamples, seed, n_classes, clusters
    )
    low, high = percentile_interval(samples[0, 0], alpha)
    return point, low, high


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided p of H0: difference = 0 from its bootstrap distribution:
    ``min(1, 2 min((1 + #{d <= 0}), (1 + #{d >= 0})) / (B + 1))``."""
    d = np.asarray(deltas, dtype=np.float64).ravel()
    below = 1.0 + np.count_nonzero(d <= 0.0)
    above = 1.0 + np.count_nonzero(d >= 0.0)
    return float(min(1.0, 2.0 * min(below, above) / (d.size + 1.0)))


def paired_test_from_samples(
    delta: float, deltas: np.ndarray, alpha: float = 0.05
) -> dict[str, Any]:
    """Interval, two-sided p-value and verdict of a difference from ONE bootstrap distribution.

    ``ci_low``/``ci_high``: percentile interval (``percentile_interval``); ``p_value``:
    ``bootstrap_p_value`` (+1 correction keeps it above 0). Both come from the same order
    statistics, so ``significant`` (p < alpha) holds exactly when the interval excludes 0.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    low, high = percentile_interval(deltas, alpha)
    p = bootstrap_p_value(deltas)
    return {
        "delta": float(delta),
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "significant": bool(p < alpha),
    }


def paired_bootstrap_test(
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    metric_fn: str | MetricFn,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_classes: int | None = None,
    clusters: Any = None,
    paired_seeds: bool = False,
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(a) - metric(b)`` on the same utterances (one seed each;
    ``pred_a``/``pred_b`` may also be lists of per-seed vectors: seed-means, seeds resampled,
    with one draw for both when ``paired_seeds``: position i is the same seed in both).

    Returns ``{delta, ci_low, ci_high, p_value, significant}`` (paired_test_from_samples).
    """
    ga = list(pred_a) if _is_seed_list(pred_a) else [pred_a]
    gb = list(pred_b) if _is_seed_list(pred_b) else [pred_b]
    delta = float(np.mean([metric_value(y_true, p, metric_fn, n_classes) for p in ga])) - float(
        np.mean([metric_value(y_true, p, metric_fn, n_classes) for p in gb])
    )
    samples = cluster_bootstrap(
        y_true, [ga, gb], [metric_fn], clusters, n_resamples, seed, n_classes,
        paired_seeds=paired_seeds,
    )
    return paired_test_from_samples(delta, samples[0, 0] - samples[1, 0], alpha)


def _is_seed_list(x: Any) -> bool:
    return isinstance(x, list | tuple) and len(x) > 0 and np.ndim(x[0]) == 1


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (None entries are not in the family, stay None)."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: (p_values[i], i))):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def seed_summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """``{mean, std, n}`` over training seeds; std uses ddof=1 and is None for a single seed
    (one seed says nothing about seed variance)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("seed_summary needs at least one value")
    std = float(v.std(ddof=1)) if v.size > 1 else None
    return {"mean": float(v.mean()), "std": std, "n": int(v.size)}
