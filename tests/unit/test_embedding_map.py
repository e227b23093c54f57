"""Affine maps between embedding spaces (cross-fitted embeddings, avemo.training.crossfit)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from avemo.training.embedding_map import fit_affine, map_export, paired_rows


def _spaces(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, the full model's embeddings, and a fold model's: the same information in
    other coordinates (a random rotation, scale and shift) plus a little noise."""
    y = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, 16)) * 2
    full = centres[y] + rng.normal(size=(n, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    fold = (full @ q) * 3.0 + 5.0 + 0.05 * rng.normal(size=(n, 16))
    return y, full, fold


def test_fit_affine_recovers_a_rotation_and_maps_unseen_rows():
    rng = np.random.default_rng(0)
    _, full, fold = _spaces(rng, 400)
    fmap = fit_affine(fold[:300], full[:300])
    assert fmap.r2 > 0.99
    assert np.abs(fmap(fold[300:]) - full[300:]).mean() < 0.05


def test_unmapped_fold_embeddings_break_a_probe_and_mapped_ones_do_not():
    # The failure this module exists for: a classifier fitted on one model's coordinates and
    # applied to another's is at chance; after the map it is as good as in one space.
    rng = np.random.default_rng(1)
    y, full, fold = _spaces(rng, 600)
    test = slice(400, 600)
    probe = LogisticRegression(max_iter=2000).fit(fold[:400], y[:400])
    raw = (probe.predict(full[test]) == y[test]).mean()
    fmap = fit_affine(fold[:200], full[:200])  # fitted on other rows than the probe's
    probe = LogisticRegression(max_iter=2000).fit(fmap(fold[200:400]), y[200:400])
    mapped = (probe.predict(full[test]) == y[test]).mean()
    assert mapped > 0.9 and mapped - raw > 0.3, (raw, mapped)


def test_map_export_maps_valid_steps_only_and_paired_rows_match_by_clip():
    rng = np.random.default_rng(2)
    seq = rng.normal(size=(2, 3, 4)).astype(np.float32)
    seq[1, 2] = 0.0
    a = {"clip_name": np.array(["a", "b"]), "emb": seq.mean(1), "seq": seq,
         "lengths": np.array([3, 2]), "t_s": np.zeros((2, 3), np.float32)}
    fmap = fit_affine(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)))
    out = map_export(a, fmap)
    assert np.allclose(out["seq"][1, 2], 0.0) and np.allclose(out["seq"][0], fmap(seq[0]))
    b = {**a, "clip_name": np.array(["b", "a"]), "emb": a["emb"][::-1],
         "seq": a["seq"][::-1], "lengths": a["lengths"][::-1]}
    x, y = paired_rows(a, b)
    assert x.shape == (1 + 3 + 1 + 2, 4) and np.allclose(x, y)


def test_fit_affine_rejects_mismatched_rows():
    with pytest.raises(ValueError):
        fit_affine(np.zeros((3, 2)), np.zeros((4, 2)))
