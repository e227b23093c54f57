"""Give the C heap's freed memory back to the operating system between phases of a job.

glibc keeps freed heap memory, and after a phase that freed many large temporaries (an
epoch, an evaluation pass, an export) the next phase often cannot reuse it for its own
sizes, so a job's resident memory ratchets up phase by phase: +300 MB over the exports of a
MELD-size ``video_branch`` job. ``malloc_trim`` returns those pages (a few milliseconds).
Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def trim_heap() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``; else a no-op)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
