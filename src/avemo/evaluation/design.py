"""An order-free design for the diagnosis' independent factors: a 2^(5-1) fractional factorial.

The five factors that can be switched independently of each other (embeddings, scaling,
budget, video, audio; avemo.diagnosis.FACTORS, two levels each) are coded -1 (the study's
level) and +1. The half fraction with defining relation ``I = -ABCDE`` has 16 runs, holds the
study's own run (all -1: the product of its codes is -1) and has resolution V: every main
effect is aliased only with a four-factor interaction and every two-factor interaction only
with a three-factor one, so all 5 main effects and 10 two-factor interactions are estimable
from the 16 runs, none depending on the order in which factors are switched.

An effect is a contrast of the runs' scores: ``sum_i c_i y_i`` with ``c = x / 8`` (the mean
over the runs at +1 minus the mean over the runs at -1) for a main effect, ``c = x_j x_k / 8``
for an interaction. Evaluated on each paired bootstrap replicate (one draw of test dialogues
and seeds for all runs: ``cluster_bootstrap(..., paired_seeds=True)``), the contrast's
replicates give its interval and p like any paired difference, and the protocol's verdicts
apply unchanged. Nested factors (activity, alignment, architecture exist only with dense video
and windowed audio) are not in the fraction: they are estimated within their parent level.

Pure functions of names and numbers; not wired into the registry (the variants would be the
16 runs of ``runs()``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

INDEPENDENT: tuple[str, ...] = ("embeddings", "scaling", "budget", "video", "audio")
# I = SIGN * ABCDE: the study's run (all -1, product (-1)^5 = -1) must be in the fraction.
DEFINING_SIGN = -1


def runs(factors: Sequence[str] = INDEPENDENT, sign: int = DEFINING_SIGN) -> np.ndarray:
    """The fraction's design matrix, ``2^(k-1) × k`` in -1/+1 codes: a full factorial in the
    first k-1 factors, the last set by the defining relation (product of all codes = sign)."""
    k = len(factors)
    if k < 3:
        raise ValueError(f"a half fraction needs at least 3 factors, got {k}")
    base = np.array(list(itertools.product((-1, 1), repeat=k - 1)), dtype=np.int64)
    last = sign * base.prod(axis=1)
    return np.column_stack([base, last])


def levels_of(x: np.ndarray, factors: Sequence[str],
              levels: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Each run's factor levels (-1: the first level, the study's; +1: the second)."""
    return [{f: levels[f][0 if c < 0 else 1] for f, c in zip(factors, row, strict=True)}
            for row in x]


def contrasts(x: np.ndarray, factors: Sequence[str]) -> dict[str, np.ndarray]:
    """Main effects ``{factor: c}`` and two-factor interactions ``{"a×b": c}``, each a vector
    over the runs with ``effect = c @ y``."""
    half = x.shape[0] / 2.0
    out = {f: x[:, j] / half for j, f in enumerate(factors)}
    for (i, a), (j, b) in itertools.combinations(enumerate(factors), 2):
        out[f"{a}×{b}"] = x[:, i] * x[:, j] / half
    return out


def resolution(x: np.ndarray) -> int:
    """The length of the shortest word in the defining relation: the smallest set of columns
    whose product is constant over the runs."""
    k = x.shape[1]
    for size in range(1, k + 1):
        for cols in itertools.combinations(range(k), size):
            prod = x[:, list(cols)].prod(axis=1)
            if np.all(prod == prod[0]):
                return size
    return k + 1


def estimate(samples: np.ndarray, c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each contrast on each replicate: ``samples`` is runs × B (or runs, the point estimate)."""
    y = np.asarray(samples, dtype=np.float64)
    return {name: np.tensordot(vec, y, axes=(0, 0)) for name, vec in c.items()}
