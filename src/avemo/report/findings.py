"""Sentences whose verdict is computed from the numbers (no hand-typed conclusion).

A difference counts as significant when its paired bootstrap CI excludes 0 and p < alpha;
otherwise the two models are reported as not significantly different.
"""

from __future__ import annotations

from typing import Any

from .tables import fmt, fmt_p

ABOVE = "significantly above"
BELOW = "significantly below"
SAME = "not significantly different from"


def relation(test: dict[str, float], alpha: float) -> str:
    """How a stands to b given the paired test of a − b."""
    if test["p_value"] < alpha and test["ci_low"] > 0:
        return ABOVE
    if test["p_value"] < alpha and test["ci_high"] < 0:
        return BELOW
    return SAME


def describe(
    test: dict[str, float], a: str, b: str, alpha: float, metric: str = "weighted F1"
) -> str:
    """ "a (0.300) is significantly below b (0.350): a − b = −0.050 [−0.08, −0.02], p = 0.001"."""
    return (
        f"`{a}` ({fmt(test['a'])}) is {relation(test, alpha)} `{b}` ({fmt(test['b'])}) in "
        f"test emotion {metric}: a − b = {fmt(test['delta'], True)} "
        f"[{fmt(test['ci_low'], True)}, {fmt(test['ci_high'], True)}], p = {fmt_p(test['p_value'])}"
    )


def fusion_verdict(
    study_pair: dict[str, Any] | None,
    best_pair: dict[str, Any] | None,
    alpha: float,
) -> list[str]:
    """The study's "fusion below the best single stream" finding, tested here, and whether the
    fixes reverse it. ``study_pair``: compare entry oriented concat_misaligned − best single
    stream; ``best_pair``: best fusion − best single stream (all chosen on dev)."""
    out = []
    before = None
    if study_pair is None:
        out.append(
            "The study's fusion (`concat_misaligned`) is not configured, so its finding "
            "(fusion below the best single stream) is not tested here."
        )
    else:
        t = study_pair["tests"]["emotion"]["weighted_f1"]
        before = relation(t, alpha)
        verdict = {
            BELOW: "is reproduced",
            ABOVE: "is NOT reproduced (the naive fusion is above it)",
            SAME: "is not confirmed (no significant difference)",
        }[before]
        out.append(
            f"The study's finding that naive fusion scores below the best single stream {verdict}"
            f": {describe(t, study_pair['a'], study_pair['b'], alpha)}."
        )
    if best_pair is None:
        out.append(
            "No fusion model is configured next to a single stream, so whether the fixes "
            "reverse the finding is not tested."
        )
        return out
    t = best_pair["tests"]["emotion"]["weighted_f1"]
    after = relation(t, alpha)
    if after == ABOVE:
        verdict = "the fixes reverse the finding: fusion is now above the best single stream"
    elif after == BELOW:
        verdict = (
            "the fixes do not reverse the finding: fusion is still below the best single stream"
        )
    elif before == BELOW:
        verdict = (
            "the fixes close the gap without reversing it: the best fusion and the best "
            "single stream no longer differ significantly"
        )
    else:
        verdict = (
            "the fixes do not reverse the finding: the best fusion is not significantly "
            "above the best single stream"
        )
    out.append(
        f"Best fusion model vs best single stream (both chosen on dev): "
        f"{describe(t, best_pair['a'], best_pair['b'], alpha)}; so {verdict}."
    )
    return out
