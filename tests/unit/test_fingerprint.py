"""Checkpoints never outlive their data: the inputs' fingerprint enters the checkpoint hash."""

from __future__ import annotations

import os
from pathlib import Path

from avemo.fingerprint import inputs_fingerprint, with_inputs


def _tree(root: Path) -> dict:
    (root / "frames").mkdir(parents=True)
    (root / "frames" / "shard-0.npy").write_bytes(b"a" * 10)
    (root / "manifest.parquet").write_bytes(b"m")
    return {"manifests": {"train": str(root / "manifest.parquet")},
            "frames": {"study": {"train": str(root / "frames")}}}


def test_same_files_same_hash_rewritten_file_new_hash(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    first = inputs_fingerprint(files)
    assert inputs_fingerprint(files) == first
    # key order of the --inputs map does not matter
    assert inputs_fingerprint(dict(reversed(list(files.items())))) == first
    shard = tmp_path / "frames" / "shard-0.npy"
    st = shard.stat()
    shard.write_bytes(b"b" * 10)  # same size, new content: a regenerated corpus
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert inputs_fingerprint(files) != first
    assert with_inputs("abc", files).startswith("abc-")


def test_a_new_file_in_an_input_folder_changes_the_hash(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    first = inputs_fingerprint(files)
    (tmp_path / "frames" / "shard-1.npy").write_bytes(b"c")
    assert inputs_fingerprint(files) != first
