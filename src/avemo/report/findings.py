"""Sentences whose verdict is computed from the numbers (no hand-typed conclusion).

A difference reads as the protocol's verdict of its pair (avemo.evaluation.verdicts, from
compare.json): "significantly above/below" only for ``effect`` (Holm-adjusted p < alpha and the
interval on one side of 0), "equivalent" when the equivalence test passes inside the margin,
otherwise "not distinguishable" (inconclusive). A pair outside every Holm family (exploratory)
never reads as significant: its raw p is descriptive.

Every finding names its data (``Data``): on real MELD (label rows equal to a published MELD
label file, most clips on disk: ``avemo.meld_release``) a finding may say the study's result is
reproduced; on MELD's labels with few clips, or on any other MELD-format corpus, it is "not
evidence about the full MELD corpus"; on the synthetic demo corpus it is
"a check of the mechanism, not evidence about MELD". Results on too few test utterances get no
verdict at all (``too_small``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import meld_release
from .tables import fmt, fmt_p

# Below this many test utterances the report says the numbers support no statistics (the
# pipeline passes evaluation.min_utterances; this is the default for direct callers).
MIN_TEST_UTTERANCES = 30
SYNTHETIC = "synthetic"
# MELD: MELD's own labels with most clips; MELD_LABELS: MELD's own labels, few clips;
# MELD_FORMAT: any other corpus in MELD's layout (avemo.meld_release decides, by content).
MELD, MELD_LABELS, MELD_FORMAT = meld_release.MELD, meld_release.MELD_LABELS, \
    meld_release.MELD_FORMAT


@dataclass(frozen=True)
class Data:
    """What the report's numbers were computed on: ``kind`` (synthetic / meld / meld_labels /
    meld_format), ``n`` utterances per split (manifest rows); for MELD's labels, ``available``
    clips on disk of ``published`` labelled utterances."""

    kind: str
    n: dict[str, int] = field(default_factory=dict)
    min_utterances: int = MIN_TEST_UTTERANCES
    available: int = 0
    published: int = 0

    @property
    def total(self) -> int:
        return sum(self.n.values())

    @property
    def name(self) -> str:
        """For prose: "the synthetic demo corpus", "MELD", "MELD labels with N of M clips
        available", "a MELD-format corpus of N utterances"."""
        if self.kind == SYNTHETIC:
            return "the synthetic demo corpus"
        if self.kind == MELD:
            return "MELD"
        if self.kind == MELD_LABELS:
            return f"MELD labels with {self.available:,} of {self.published:,} clips available"
        return f"a MELD-format corpus of {self.total:,} utterances"

    @property
    def label(self) -> str:
        """For a CSV ``dataset`` column and captions (no article)."""
        if self.kind == SYNTHETIC:
            return "synthetic demo corpus"
        if self.kind == MELD:
            return "MELD"
        if self.kind == MELD_LABELS:
            return f"MELD labels ({self.available} of {self.published} clips)"
        return f"MELD-format corpus ({self.total} utterances)"

    @property
    def test_too_small(self) -> bool:
        return self.n.get("test", 0) < self.min_utterances

    def finding(self, sentence: str) -> str:
        """``sentence`` (no final period) framed by the data it was measured on."""
        if self.kind == SYNTHETIC:
            return (
                f"On the synthetic demo corpus, {sentence}: a check of the mechanism, "
                "not evidence about MELD."
            )
        if self.kind == MELD:
            return f"On MELD, {sentence}."
        return f"On {self.name}, {sentence}: not evidence about the full MELD corpus."


def identify(
    description: Mapping[str, Any], manifests: Mapping[str, pd.DataFrame],
    min_utterances: int = MIN_TEST_UTTERANCES, published: Mapping[str, Any] | None = None,
) -> Data:
    """Synthetic when the config says so; otherwise by content (``avemo.meld_release``):
    "meld" only when every split's label rows are those of a label file published in the MELD
    repository and most clips are on disk, "meld_labels" when the labels are MELD's but the
    clips are not, else a MELD-format corpus. Split sizes alone decide nothing.
    ``published``: the fingerprints (default: the packaged file)."""
    counts = {s: len(m) for s, m in manifests.items()}
    if description.get("dataset") == SYNTHETIC:
        return Data(SYNTHETIC, counts, min_utterances)
    found = meld_release.identify(manifests, published)
    return Data(found.kind, counts, min_utterances, found.available, found.published)


def _flag(value: Any) -> bool:
    """A ``too_small`` field: a bool, or per split ({split: bool} / list of splits)."""
    if isinstance(value, Mapping):
        return any(_flag(v) for k, v in value.items() if not str(k).startswith("dev"))
    if isinstance(value, list | tuple | set):
        return any(not str(v).startswith("dev") for v in value)
    return bool(value)


def too_small(*blocks: Mapping[str, Any] | None) -> bool:
    """Whether any metrics JSON / compare entry / test dict says its split is too small for
    statistics (field ``too_small``, absent = not flagged)."""
    for b in blocks:
        if not b:
            continue
        if _flag(b.get("too_small")):
            return True
        tests = b.get("tests")
        if isinstance(tests, Mapping):
            for task in tests.values():
                if isinstance(task, Mapping) and any(
                    isinstance(t, Mapping) and _flag(t.get("too_small")) for t in task.values()
                ):
                    return True
    return False

ABOVE = "significantly above"
BELOW = "significantly below"
EQUIVALENT = "equivalent (inside the protocol's margin) to"
SAME = "not distinguishable (inconclusive) from"


def relation(test: dict[str, Any], alpha: float) -> str:
    """How a stands to b given the paired test of a − b: its protocol verdict (``verdict``),
    else its Holm-adjusted p (``p_holm``); a test with neither is in no family and never
    significant."""
    verdict = test.get("verdict")
    if verdict is None and test.get("p_holm") is not None:
        effect = test["p_holm"] < alpha and (test["ci_low"] > 0 or test["ci_high"] < 0)
        verdict = "effect" if effect else "inconclusive"
    if verdict == "effect":
        return ABOVE if test["delta"] > 0 else BELOW
    if verdict == "equivalent":
        return EQUIVALENT
    return SAME


def p_text(test: dict[str, Any]) -> str:
    """ "p (Holm) = 0.003" for a family member, else the raw p marked as exploratory."""
    if test.get("p_holm") is not None:
        return f"p (Holm) = {fmt_p(test['p_holm'])}"
    return f"p = {fmt_p(test['p_value'])} (exploratory, unadjusted)"


def describe(
    test: dict[str, float],
    a: str,
    b: str,
    alpha: float,
    metric: str = "weighted F1",
    small: bool = False,
) -> str:
    """ "a (0.300) is significantly below b (0.350): a − b = −0.050 [−0.08, −0.02] (marginal
    95% interval), p (Holm) = 0.001"; ``small``: too few utterances, so no verdict (only the
    numbers, marked as such)."""
    if small:
        return (
            f"`{a}` ({fmt(test['a'])}) vs `{b}` ({fmt(test['b'])}) in test emotion {metric}: "
            f"a − b = {fmt(test['delta'], True)}, NO verdict: too few test utterances for "
            "statistics"
        )
    return (
        f"`{a}` ({fmt(test['a'])}) is {relation(test, alpha)} `{b}` ({fmt(test['b'])}) in "
        f"test emotion {metric}: a − b = {fmt(test['delta'], True)} "
        f"[{fmt(test['ci_low'], True)}, {fmt(test['ci_high'], True)}] (marginal "
        f"{1 - alpha:.0%} interval), {p_text(test)}"
    )


def fusion_verdict(
    study_pair: dict[str, Any] | None,
    best_pair: dict[str, Any] | None,
    alpha: float,
    data: Data | None = None,
    small: bool = False,
) -> list[str]:
    """The study's "fusion below the best single stream" finding, tested here, and whether the
    fixes reverse it. ``study_pair``: compare entry oriented concat_misaligned − best single
    stream; ``best_pair``: best fusion − best single stream (all chosen on dev). ``data``: what
    the numbers come from (each finding names it; only on real MELD can a finding be
    "reproduced"); ``small``: too few test utterances, so no verdict at all."""
    out = []
    before = None
    if small:
        for pair in (study_pair, best_pair):
            if pair is not None:
                t = pair["tests"]["emotion"]["weighted_f1"]
                text = describe(t, pair["a"], pair["b"], alpha, small=True)
                out.append(data.finding(text) if data else text + ".")
        out.append(
            "**Too few test utterances for statistics: the study's finding (fusion below the "
            "best single stream) and whether the fixes reverse it are not tested.**"
        )
        return out
    real = data is None or data.kind == MELD
    if study_pair is None:
        out.append(
            "The study's fusion (`concat_misaligned`) is not configured, so its finding "
            "(fusion below the best single stream) is not tested here."
        )
    else:
        t = study_pair["tests"]["emotion"]["weighted_f1"]
        before = relation(t, alpha)
        verdict = (
            {
                BELOW: "is reproduced",
                ABOVE: "is NOT reproduced (the naive fusion is above it)",
                EQUIVALENT: "is NOT reproduced (the two are equivalent within the margin)",
                SAME: "is not confirmed (inconclusive)",
            }
            if real
            else {
                BELOW: "holds",
                ABOVE: "does NOT hold (the naive fusion is above it)",
                EQUIVALENT: "does NOT hold (the two are equivalent within the margin)",
                SAME: "is not confirmed (inconclusive)",
            }
        )[before]
        text = (
            f"the study's finding that naive fusion scores below the best single stream {verdict}"
            f": {describe(t, study_pair['a'], study_pair['b'], alpha)}"
        )
        out.append(data.finding(text) if data else text[0].upper() + text[1:] + ".")
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
    elif before == BELOW and after == EQUIVALENT:
        verdict = (
            "the fixes close the gap without reversing it: the best fusion and the best "
            "single stream are equivalent within the margin"
        )
    elif before == BELOW:
        # Inconclusive is not "no difference": only an equivalence verdict closes the gap.
        verdict = (
            "whether the fixes close the gap is undecided: the best fusion and the best "
            "single stream no longer differ significantly, nor are they shown equivalent "
            "(inconclusive)"
        )
    else:
        verdict = (
            "the fixes do not reverse the finding: the best fusion is not significantly "
            "above the best single stream"
        )
    text = (
        f"best fusion model vs best single stream (both chosen on dev): "
        f"{describe(t, best_pair['a'], best_pair['b'], alpha)}; so {verdict}"
    )
    out.append(data.finding(text) if data else text[0].upper() + text[1:] + ".")
    return out
