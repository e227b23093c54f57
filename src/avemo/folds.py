"""Folds grouped by dialogue, for everything fitted out of fold (cross-fitted embeddings, late
fusion's weights): a dialogue's utterances share speakers and scene, so splitting one across
folds would let a model see the held-out fold's faces and voices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataStageError
from .evaluation.bootstrap import dialogue_ids


def dialogue_folds(clip_names: Sequence[str] | np.ndarray, folds: int, seed: int,
                   what: str = "fusion.cross_fit_folds") -> np.ndarray:
    """Fold index (0..folds-1) of each clip: whole dialogues, shuffled with ``seed``, dealt
    round-robin so the folds hold as equal numbers of dialogues as possible."""
    groups = dialogue_ids(clip_names)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if folds < 2 or n_groups < folds:
        raise DataStageError(
            f"out-of-fold fitting needs at least 2 folds and as many dialogues as folds; got "
            f"{folds} folds for {n_groups} dialogues: lower {what}")
    order = np.random.default_rng(seed).permutation(n_groups)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    fold_of_group[order] = np.arange(n_groups) % folds
    return fold_of_group[groups]
