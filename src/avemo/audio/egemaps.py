"""eGeMAPSv02 functionals (88-D) with openSMILE.

The ``opensmile.Smile`` object is built once per process (it parses the config files) and
reused for every clip. This module imports neither torch nor the rest of the package: the audio
stage's eGeMAPS workers import only it (numpy + openSMILE).
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DIM = 88
# openSMILE fills every functional with NaN below this length ("Segment too short").
MIN_SECONDS = 0.1


@functools.lru_cache(maxsize=1)
def _smile() -> object:
    import opensmile  # imported lazily: only the eGeMAPS option needs it

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def egemaps_names() -> list[str]:
    """The 88 feature names, in column order."""
    return list(_smile().feature_names)  # type: ignore[attr-defined]


def egemaps_vector(wave: torch.Tensor | np.ndarray, rate: int) -> np.ndarray:
    """float32[88] eGeMAPSv02 functionals of a mono waveform; NaN (too short) becomes 0."""
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if x.size < int(MIN_SECONDS * rate):
        # Zero-pad rather than let openSMILE return all-NaN for a very short segment.
        x = np.pad(x, (0, int(MIN_SECONDS * rate) - x.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        df = _smile().process_signal(x, int(rate))  # type: ignore[attr-defined]
    vec = df.to_numpy(dtype=np.float32).reshape(-1)
    if vec.size != DIM:
        raise RuntimeError(f"openSMILE returned {vec.size} eGeMAPS values instead of {DIM}")
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0)
