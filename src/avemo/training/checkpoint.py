"""Checkpoints: tensors and plain types only, so ``torch.load(weights_only=True)`` reads them.

Contents: ``model``, ``optimizer``, ``scheduler``, ``scaler`` (state dicts), ``epoch`` (last
completed epoch, 1-based; 0 before the first), ``best_score``, ``best_epoch``, ``bad_epochs``
(patience counter), ``stopped`` (early stopping fired), ``history`` (log rows), ``rng`` (torch /
numpy / python states and the current CUDA device's), ``config_hash``, ``model_name``,
``weights_used`` (what the run started from: on resume it is taken from here, not from the
rebuilt model), ``skipped_batches`` (optional: older checkpoints lack it).

:func:`snapshot` and :func:`restore` are the engine's save and resume steps.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from avemo.atomic import atomic_path
from avemo.errors import TrainingError

# What the engine records about its own progress (restored as is on resume).
PROGRESS_KEYS = ("epoch", "best_score", "best_epoch", "bad_epochs", "stopped", "history")
REQUIRED = ("model", "optimizer", "scheduler", "rng", "config_hash", *PROGRESS_KEYS)


def get_rng_state() -> dict[str, Any]:
    """Every RNG that training draws from, as tensors and plain types."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
    }
    if torch.cuda.is_available():
        # Only the device that trains: saving every visible GPU's state and restoring them
        # all fails with "invalid device ordinal" on a node that shows fewer GPUs.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # older checkpoints: one state per visible device
            cuda = cuda[0] if cuda else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)  # the current device, whichever index it has


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically: a kill leaves the previous checkpoint, never a truncated one."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True``; any unreadable or incomplete file is a TrainingError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle error, foreign object: all unusable
        raise TrainingError(
            f"checkpoint {path} is corrupted or unreadable ({type(exc).__name__}: {exc}); "
            f"delete {path} (or its folder {path.parent}) and run training again"
        ) from exc
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(
            f"checkpoint {path} lacks {missing}: not written by this version of avemo or "
            f"corrupted; delete {path} and run training again"
        )
    return state


def check_config_hash(path: str | Path, state: dict[str, Any], config_hash: str) -> None:
    """Refuse to resume a run trained under another configuration."""
    if state["config_hash"] != config_hash:
        raise TrainingError(
            f"checkpoint {path} was written with config hash {state['config_hash']} but the "
            f"current config hash is {config_hash}; delete the folder {Path(path).parent} to "
            "retrain with the new config, or restore the config it was trained with"
        )


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any], /) -> Any: ...


def snapshot(
    progress: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: _Stateful,
    scheduler: _Stateful,
    scaler: _Stateful,
    config_hash: str,
) -> dict[str, Any]:
    """Everything needed to continue training exactly where it stands (see the module doc)."""
    return {
        **{k: progress[k] for k in PROGRESS_KEYS},
        "skipped_batches": int(progress.get("skipped_batches", 0)),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": get_rng_state(),
        "config_hash": config_hash,
        "model_name": getattr(model, "model_name", type(model).__name__),
        "weights_used": getattr(model, "weights_used", None),
    }


def restore(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: _Stateful,
    scheduler: _Stateful,
    scaler: _Stateful,
    config_hash: str,
) -> dict[str, Any]:
    """Load ``path`` into the given objects and every RNG; return its progress fields.

    Refuses a checkpoint of another config hash (which includes the training code's digest)."""
    ck = load_checkpoint(path)
    check_config_hash(path, ck, config_hash)
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    scheduler.load_state_dict(ck["scheduler"])
    if ck.get("scaler"):  # empty when AMP was off
        scaler.load_state_dict(ck["scaler"])
    set_rng_state(ck["rng"])
    if ck.get("weights_used") is not None:
        model.weights_used = ck["weights_used"]  # type: ignore[assignment]
    return {**{k: ck[k] for k in PROGRESS_KEYS},
            "skipped_batches": int(ck.get("skipped_batches", 0))}
