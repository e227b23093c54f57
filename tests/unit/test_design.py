"""The 2^(5-1) resolution-V fraction for the diagnosis' independent factors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from avemo import diagnosis
from avemo.evaluation import bootstrap, design


def test_half_fraction_holds_the_study_and_is_resolution_five() -> None:
    x = design.runs()
    assert x.shape == (16, 5)
    assert len({tuple(r) for r in x}) == 16
    assert (x.sum(axis=0) == 0).all()  # every level in 8 runs
    levels = design.levels_of(x, design.INDEPENDENT, diagnosis.FACTORS)
    study = {f: diagnosis.STUDY[f] for f in design.INDEPENDENT}
    assert study in levels  # the study's own setup is one of the runs
    assert design.resolution(x) == 5
    # The other half (I = +ABCDE) does not hold the study.
    other = design.levels_of(design.runs(sign=1), design.INDEPENDENT, diagnosis.FACTORS)
    assert study not in other
    with pytest.raises(ValueError):
        design.runs(("a", "b"))


def test_main_effects_and_interactions_are_orthogonal_contrasts() -> None:
    x = design.runs()
    c = design.contrasts(x, design.INDEPENDENT)
    assert len(c) == 5 + 10
    for (_, u), (_, v) in itertools.combinations(c.items(), 2):
        assert u @ v == pytest.approx(0.0)
    for vec in c.values():
        assert vec.sum() == pytest.approx(0.0)


def test_a_planted_additive_world_is_recovered_exactly() -> None:
    x = design.runs()
    f = {name: x[:, j] for j, name in enumerate(design.INDEPENDENT)}
    # +0.10 for scaling on, +0.04 for windowed audio, a scaling x audio interaction of 0.02
    # (effects as differences between levels: a coded coefficient is half of it).
    y = 0.3 + 0.05 * f["scaling"] + 0.02 * f["audio"] + 0.01 * f["scaling"] * f["audio"]
    est = design.estimate(y, design.contrasts(x, design.INDEPENDENT))
    assert est["scaling"] == pytest.approx(0.10) and est["audio"] == pytest.approx(0.04)
    assert est["scaling×audio"] == pytest.approx(0.02)
    others = {k: v for k, v in est.items() if k not in ("scaling", "audio", "scaling×audio")}
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in others.values())


def test_contrasts_on_paired_replicates_give_intervals() -> None:
    rng = np.random.default_rng(0)
    x = design.runs()
    y_true = rng.integers(0, 7, 300)
    # Runs with scaling on predict better: accuracy 0.6 vs 0.3, three seeds each.
    groups = []
    for row in x:
        acc = 0.6 if row[1] > 0 else 0.3
        groups.append([np.where(rng.random(300) < acc, y_true, rng.integers(0, 7, 300))
                       for _ in range(3)])
    s = bootstrap.cluster_bootstrap(y_true, groups, ["accuracy"], np.arange(300) // 5, 999, 0,
                                    7, paired_seeds=True)[:, 0, :]
    est = design.estimate(s, design.contrasts(x, design.INDEPENDENT))
    lo, hi = bootstrap.percentile_interval(est["scaling"], 0.05)
    assert lo > 0.2 and hi < 0.4
    lo, hi = bootstrap.percentile_interval(est["budget"], 0.05)
    assert lo < 0 < hi
