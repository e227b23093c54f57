"""Which timestamps of a clip to sample frames at.

Every policy places frames at the *centres* of equal time cells (offset = half a cell), so a clip
is covered symmetrically and the first frame is never the black/fade frame at t=0 that many
MELD clips start with. A clip too short for any cell centre still yields one frame, at its middle.
"""

from __future__ import annotations

import math

import numpy as np

from avemo.errors import ConfigError

# The study sampled one frame every 3 s.
STUDY_EVERY_S: float = 3.0

POLICIES: tuple[str, ...] = ("every_s", "uniform_k", "fps")


def sample_times(
    duration_s: float,
    policy: str,
    every_s: float = STUDY_EVERY_S,
    uniform_k: int = 8,
    fps: float = 1.0,
) -> np.ndarray:
    """Timestamps (seconds, float64, ascending) at which to take frames from a clip.

    - ``every_s``: ``every_s/2, every_s/2 + every_s, ...`` while ``< duration_s``.
    - ``uniform_k``: the centres of ``uniform_k`` equal segments of the clip.
    - ``fps``: ``fps`` frames per second, i.e. ``every_s = 1/fps`` with the same half-cell offset.

    Always at least one timestamp: ``duration_s/2`` for clips shorter than half a cell, ``0.0``
    when the duration is unknown (NaN) or not positive.
    """
    if policy not in POLICIES:
        raise ConfigError(
            f"frames.policy: unknown policy {policy!r}; use one of {', '.join(POLICIES)}"
        )
    if not math.isfinite(duration_s) or duration_s <= 0:
        return np.zeros(1, dtype=np.float64)
    if policy == "uniform_k":
        if int(uniform_k) < 1:
            raise ConfigError(f"frames.uniform_k: must be >= 1, got {uniform_k!r}")
        k = int(uniform_k)
        return (np.arange(k, dtype=np.float64) + 0.5) * (duration_s / k)
    if policy == "fps":
        if not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"frames.fps: must be a positive number, got {fps!r}")
        step = 1.0 / fps
    else:
        if not (math.isfinite(every_s) and every_s > 0):
            raise ConfigError(f"frames.every_s: must be a positive number, got {every_s!r}")
        step = float(every_s)
    # Integer cell count rather than np.arange(float) so rounding cannot add/drop a frame.
    n = math.ceil(duration_s / step - 0.5)
    if n < 1:
        return np.array([duration_s / 2.0], dtype=np.float64)
    return (np.arange(n, dtype=np.float64) + 0.5) * step
