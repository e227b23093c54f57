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


def out_of_fold_folds(clip_names: Sequence[str] | np.ndarray, folds: int,
                      seed: int) -> tuple[np.ndarray, str]:
    """Folds for out-of-fold fitting on a split of any size, and how they were made: by
    dialogue (``folds``, or as many as there are dialogues); a split of one dialogue (a toy
    corpus) can only be cut by utterance, and the description says so."""
    names = np.asarray(clip_names, dtype=str)
    n_dialogues = len(np.unique(dialogue_ids(names))) if len(names) else 0
    k = min(folds, n_dialogues)
    if k >= 2:
        return dialogue_folds(names, k, seed), f"{k} folds grouped by dialogue"
    k = min(folds, len(names))
    if k < 2:
        raise DataStageError(f"{len(names)} utterance(s): out-of-fold fitting needs at least 2")
    fold = np.random.default_rng(seed).permutation(len(names)) % k
    return fold, (f"{k} folds by utterance ({n_dialogues} dialogue(s), too few to group: "
                  "a toy corpus)")
