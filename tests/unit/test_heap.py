"""avemo.heap: freed heap memory goes back to the system between a job's phases."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from avemo.heap import trim_heap


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_returns_freed_heap_pages_that_free_alone_keeps() -> None:
    # 64 kB blocks (under glibc's mmap threshold: heap) between small live ones, so that
    # freeing the blocks leaves holes inside the heap, which free() never returns.
    blocks, pins = [], []
    for _ in range(1500):
        blocks.append(np.ones(8192))  # 64 kB, touched
        pins.append(bytearray(1000))  # > 512 B: malloc, not the small-object allocator
    del blocks
    before = _rss_mb()
    trim_heap()
    assert before - _rss_mb() > 50  # ~94 MB of holes
    trim_heap()  # nothing left to return: harmless
    assert len(pins) == 1500
