"""A cheap fingerprint of a job's input files, so a checkpoint never outlives its data.

Training checkpoints survive a rerun on purpose (Snakemake ``update()`` outputs): a killed job
resumes from ``last.pt``. But Snakemake also reruns a job whose inputs changed while its params
and code did not (a regenerated corpus with other pixels, a re-extracted audio stage), and the
engine would then resume a model trained on the old data and skip every epoch. The stages mix
this fingerprint into the checkpoint's config hash: same files, same hash (resume); rewritten
files, new hash (fresh start). Sizes and modification times only: content hashing of frame
shards would cost seconds per job at MELD scale, and a rewritten file gets a new mtime.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _paths(tree: Any) -> Iterable[str]:
    if isinstance(tree, str | os.PathLike):
        yield str(tree)
    elif isinstance(tree, Mapping):
        for key in sorted(tree):
            yield from _paths(tree[key])
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from _paths(item)


def _entries(path: Path) -> Iterable[tuple[str, int, int]]:
    if path.is_file():
        st = path.stat()
        yield str(path), st.st_size, st.st_mtime_ns
    elif path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                st = p.stat()
                yield str(p), st.st_size, st.st_mtime_ns


def inputs_fingerprint(files: Any) -> str:
    """Short hash of the name, size and mtime of every file in ``files`` (a path, or a nested
    dict/list of paths as a job's ``--inputs``; folders are walked); missing paths count as
    absent."""
    h = hashlib.sha256()
    for p in sorted(set(_paths(files))):
        for name, size, mtime in _entries(Path(p)):
            h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()[:16]


def with_inputs(config_hash: str, files: Any) -> str:
    """The checkpoint hash of a job: its params-and-code hash and its inputs' fingerprint."""
    return f"{config_hash}-{inputs_fingerprint(files)}"
