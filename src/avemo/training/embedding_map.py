"""Affine maps between the embedding spaces of two models of the same architecture.

Cross-fitting trains one model per fold, and every one of them (and the full model whose
embeddings serve dev and test) learns its own coordinates: the same clip gets unrelated
100-D vectors from two of them. Out-of-fold embeddings joined as they are would give a fusion
model train inputs in K spaces and dev/test inputs in another one (measured on the planted
demo: a linear probe trained on such train embeddings scored test weighted F1 0.00-0.32
against 0.43-0.50 from in-sample ones). Networks trained on similar data are close to affine
images of each other (the basis of model stitching), so each fold model's space is mapped
into the full model's by ridge least squares, fitted on the clips both models were trained on
(both in-sample there) and applied to the fold's held-out clips (out of sample for it).

Regression toward the mean makes the mapped train embeddings about half as spread as the full
model's dev/test ones. Maps that keep the spread (this ridge map rescaled to the target's
spread, or a scaled orthogonal Procrustes map) were tried on the planted runs and changed no
outcome: the unscaled study fusion still predicted one class in every seed, and the scaled
models' test weighted F1 moved by -0.015 to +0.013 (means over 3 seeds, both cues); so the
ridge map stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AffineMap:
    """``y ≈ x @ weight + bias``; ``r2``: variance of ``y`` explained on the fitting rows."""

    weight: np.ndarray
    bias: np.ndarray
    r2: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) @ self.weight + self.bias).astype(np.float32)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of the total variance of ``y`` (all columns pooled) that ``pred`` explains."""
    y = np.asarray(y, dtype=np.float64)
    total = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else 0.0


def fit_affine(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> AffineMap:
    """Ridge least squares ``y ≈ x W + b`` on rows of ``x`` [N,Dx] and ``y`` [N,Dy].

    ``ridge`` is relative to the mean variance of ``x``'s columns, so it means the same for
    embeddings of any scale; it keeps the map defined when rows are fewer than dimensions.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"fit_affine needs matching non-empty row sets, got {x.shape}, {y.shape}")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    lam = ridge * max(float(xc.var(0).mean()), 1e-12) * len(x)
    weight = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    bias = my - mx @ weight
    return AffineMap(weight, bias, r2_score(y, x @ weight + bias))


def map_export(arrays: dict[str, np.ndarray], fmap: AffineMap) -> dict[str, np.ndarray]:
    """An embeddings export (``emb`` and, when present, per-step ``seq`` with ``lengths``)
    with every vector mapped; padding steps stay zero."""
    out = dict(arrays)
    out["emb"] = fmap(arrays["emb"])
    if "seq" in arrays:
        seq = arrays["seq"]
        valid = np.arange(seq.shape[1])[None, :] < arrays["lengths"][:, None]
        mapped = np.zeros(seq.shape, dtype=np.float32)
        mapped[valid] = fmap(seq[valid])
        out["seq"] = mapped
    return out


def paired_rows(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Rows of two exports of the same clips by two models, paired: each clip's pooled
    ``emb`` and, where both have per-step ``seq`` of the same length, every valid step."""
    pos = {n: i for i, n in enumerate(b["clip_name"].astype(str))}
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for i, name in enumerate(a["clip_name"].astype(str)):
        j = pos.get(name)
        if j is None:
            continue
        xs.append(a["emb"][i : i + 1])
        ys.append(b["emb"][j : j + 1])
        if "seq" in a and "seq" in b and a["lengths"][i] == b["lengths"][j]:
            n = int(a["lengths"][i])
            xs.append(a["seq"][i, :n])
            ys.append(b["seq"][j, :n])
    if not xs:
        return np.zeros((0, a["emb"].shape[1])), np.zeros((0, b["emb"].shape[1]))
    return np.concatenate(xs), np.concatenate(ys)
