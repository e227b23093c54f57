"""Seeding and deterministic-algorithm settings."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True, warn_only: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally force deterministic kernels.

    Strict on CPU and CUDA: an op without a deterministic kernel raises instead of silently
    varying (the models avoid adaptive pooling's backward for that, avemo.models.masking).
    ``warn_only`` is for a model that declares such an op (:func:`nondeterministic_ops`).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
        torch.backends.cudnn.benchmark = False


def nondeterministic_ops(model: torch.nn.Module, device: torch.device) -> str | None:
    """What in ``model`` has no deterministic kernel on ``device`` (the model's class attribute
    ``nondeterministic_cuda``, e.g. attention backward), or None: that model then trains with
    ``warn_only`` and its summary and the report say why two runs may differ."""
    if device.type != "cuda":
        return None
    return getattr(model, "nondeterministic_cuda", None) or None


@contextlib.contextmanager
def deterministic_mode(seed: int, warn_only: bool = False) -> Iterator[None]:
    """``seed_everything(seed)`` for a block, then restore the deterministic-algorithms flag so
    training does not change the global torch setting for the rest of the process."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(seed, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy/random in each DataLoader worker from torch's per-worker seed.

    torch derives that seed from the loader's seeded generator, so workers are reproducible.
    """
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
