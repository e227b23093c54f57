"""Seeding and deterministic-algorithm settings."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (CPU and CUDA); optionally force deterministic kernels.

    On CUDA some kernels (adaptive pooling backward, ...) have no deterministic version, so
    there determinism is best effort (``warn_only``); on CPU it is strict.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def deterministic_mode(seed: int) -> Iterator[None]:
    """``seed_everything(seed)`` for a block, then restore the deterministic-algorithms flag so
    training does not change the global torch setting for the rest of the process."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(seed)
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
