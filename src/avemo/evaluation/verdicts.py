"""The three verdicts of the diagnosis protocol, and collapse as an outcome.

Every effect (a paired difference ``a - b`` of the endpoint) reads one of:

- ``effect``: its Holm-adjusted p is below alpha and its interval lies on one side of 0;
- ``equivalent``: two one-sided tests (TOST) put the difference inside ``(-margin, +margin)``,
  their p Holm-adjusted over the same family;
- ``inconclusive``: neither (also when the pair is too small for statistics).

"Not significant" is never read as "no effect": only ``equivalent`` says the factor does not
matter (by more than the margin). The rule is checked in that order, so a difference that is
both real and smaller than the margin reads ``effect`` (the interval shows its size).

Collapse (one class for at least ``share`` of a model's DEV predictions, per seed) is decided
from the dev confusion matrices in each model's metrics file, before any test number is read.
An effect on collapse is the effect's contrast of the 0/1 collapse outcomes per seed, tested
with an exact two-sided sign test over the seeds where it is not 0 (variant seed s is built on
stream seed s: the seeds are paired; for a pair, the seeds where the two models differ).

Pure functions of numbers: the compare stage and the report call them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from avemo.evaluation.bootstrap import holm, percentile_interval

EFFECT, EQUIVALENT, INCONCLUSIVE = "effect", "equivalent", "inconclusive"


def tost_p(deltas: np.ndarray, margin: float) -> float:
    """p of "the difference lies outside ``±margin``" from its bootstrap distribution: the
    larger of the two one-sided bootstrap p-values, ``(1 + #{d <= -margin}) / (B + 1)`` and
    ``(1 + #{d >= +margin}) / (B + 1)`` (below alpha exactly when the ``1 - 2 alpha``
    percentile interval lies inside the margin)."""
    if margin <= 0:
        raise ValueError(f"equivalence margin must be positive, got {margin}")
    d = np.asarray(deltas, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("no bootstrap samples")
    low = (1.0 + np.count_nonzero(d <= -margin)) / (d.size + 1.0)
    high = (1.0 + np.count_nonzero(d >= margin)) / (d.size + 1.0)
    return float(min(1.0, max(low, high)))


def simultaneous_interval(deltas: np.ndarray, alpha: float, m: int) -> tuple[float, float]:
    """Percentile interval at level ``1 - alpha / m`` (Bonferroni): the ``m`` intervals of a
    family cover their true differences together with probability at least ``1 - alpha``."""
    return percentile_interval(deltas, alpha / max(int(m), 1))


def verdict(p_holm: float | None, ci_low: float, ci_high: float, p_tost_holm: float | None,
            alpha: float, too_small: bool = False) -> str:
    """``effect`` / ``equivalent`` / ``inconclusive`` (module docstring; None p: untested)."""
    if too_small:
        return INCONCLUSIVE
    if p_holm is not None and p_holm < alpha and (ci_low > 0 or ci_high < 0):
        return EFFECT
    if p_tost_holm is not None and p_tost_holm < alpha:
        return EQUIVALENT
    return INCONCLUSIVE


def family_verdicts(tests: Sequence[Mapping[str, Any] | None], alpha: float
                    ) -> list[dict[str, Any]]:
    """Holm-adjust a family's p-values and TOST p-values together and decide each verdict.

    ``tests``: one per effect, ``{p_value, p_tost, ci_low, ci_high, too_small}`` or None
    (not tested: stays out of the adjustment, reads inconclusive). Returns per effect
    ``{p_holm, p_tost_holm, verdict}``.
    """
    def usable(t: Mapping[str, Any] | None) -> bool:
        return t is not None and not t.get("too_small")

    p_holm = holm([t["p_value"] if usable(t) else None for t in tests])  # type: ignore[index]
    tost_holm = holm([t.get("p_tost") if usable(t) else None for t in tests])  # type: ignore[union-attr]
    out = []
    for t, ph, pt in zip(tests, p_holm, tost_holm, strict=True):
        v = (INCONCLUSIVE if not usable(t) else
             verdict(ph, t["ci_low"], t["ci_high"], pt, alpha))  # type: ignore[index]
        out.append({"p_holm": ph, "p_tost_holm": pt, "verdict": v})
    return out


# --- collapse ---------------------------------------------------------------------------------


def top_share(confusion: Sequence[Sequence[float]]) -> float:
    """Share of the predictions that go to the most-predicted class (confusion rows = truth)."""
    c = np.asarray(confusion, dtype=np.float64)
    total = c.sum()
    return float(c.sum(axis=0).max() / total) if total > 0 else math.nan


def collapsed_seeds(metrics: Mapping[str, Any], share: float, split: str = "dev",
                    task: str = "emotion") -> dict[str, bool]:
    """``{seed: collapsed}`` of one model's metrics JSON: one class takes at least ``share``
    of the seed's ``split`` predictions. A seed without that confusion matrix is left out
    (nothing is claimed about it)."""
    out = {}
    for seed, per in (metrics.get("seeds") or {}).items():
        conf = ((per or {}).get(split) or {}).get(task, {}).get("confusion")
        if conf is not None:
            s = top_share(conf)
            out[str(seed)] = bool(not math.isnan(s) and s >= share)
    return out


def sign_test_counts(up: int, down: int) -> float:
    """Exact two-sided sign test: ``up`` and ``down`` paired units moved either way,
    Binomial(up + down, 1/2) under H0 (ties are left out)."""
    n = up + down
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(up, down) + 1)) / 2.0**n
    return float(min(1.0, 2.0 * tail))


def sign_test_p(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Exact two-sided sign test (McNemar's exact test) of paired binary outcomes: seeds where
    exactly one of the two collapsed are the discordant pairs, Binomial(n, 1/2) under H0."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths: {len(a)} vs {len(b)}")
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    return sign_test_counts(only_a, only_b)


def collapse_effects(effects: Sequence[Mapping[str, float]],
                     collapse: Mapping[str, Mapping[str, bool]], alpha: float
                     ) -> list[dict[str, Any]]:
    """Each effect's contrast (``{model: c}``; a pair ``a - b`` is ``{a: 1, b: -1}``) of the
    0/1 collapse outcomes, per seed, over the seeds every model of it has (``collapse``:
    ``{model: {seed: collapsed}}``); the exact sign test over the seeds where it is not 0,
    Holm-adjusted over the effects. Returns ``{n, a, b, p_value, p_holm, verdict}`` with ``a``
    / ``b`` the collapsed seeds summed over the positive / negative side; verdict ``effect``
    or ``inconclusive``."""
    rows = []
    for weights in effects:
        per = [collapse.get(m, {}) for m in weights]
        seeds = sorted(set.intersection(*(set(c) for c in per)) if per else set(),
                       key=lambda s: (len(s), s))
        d = [sum(c * float(collapse[m][s]) for m, c in weights.items()) for s in seeds]
        up = sum(1 for x in d if x > 1e-12)
        down = sum(1 for x in d if x < -1e-12)
        side = {sign: sum(int(collapse[m][s]) for m, c in weights.items() if c * sign > 0
                          for s in seeds) for sign in (1, -1)}
        rows.append({"n": len(seeds), "a": side[1], "b": side[-1],
                     "p_value": sign_test_counts(up, down) if seeds else None})
    for row, ph in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = ph
        row["verdict"] = EFFECT if ph is not None and ph < alpha else INCONCLUSIVE
    return rows


def min_sign_test_p(n: int) -> float:
    """The smallest p the sign test can give with ``n`` paired seeds (all discordant, one way)."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0
