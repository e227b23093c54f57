"""Arrays on disk without whole copies in memory: rows of a ``.npy`` file read on demand
with ``os.pread`` (``NpyRows``), and ``.npz`` files written member by member, chunk by chunk
(``write_npz``).

Why not a memory map: every page of a map that a process has touched stays counted in its
resident memory until the map is closed, so one pass over a MELD-sized array (an epoch, an
embeddings export) grows a job's RSS by the file's size. A ``pread`` leaves nothing behind
but the copy it returns; the kernel's page cache still keeps the file warm, outside the job.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from avemo.errors import DataStageError


class NpyRows:
    """Read-only row access to one C-order ``.npy`` file; picklable (the descriptor is
    reopened lazily in each process, e.g. a DataLoader worker)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd: int | None = None
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                self.offset = fh.tell()
        except (OSError, ValueError) as exc:
            raise DataStageError(f"{self.path}: not a readable .npy file ({exc}); rerun the "
                                 "stage that writes it") from exc
        if fortran or dtype.hasobject or not shape:
            raise DataStageError(f"{self.path}: expected a C-order numeric array with rows; "
                                 "rerun the stage that writes it")
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a new writable array."""
        start, stop = max(0, int(start)), min(len(self), int(stop))
        out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
        if out.nbytes == 0:
            return out
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        got = os.preadv(self._fd, [memoryview(out).cast("B")],
                        self.offset + start * self.row_bytes)
        if got != out.nbytes:
            raise DataStageError(f"{self.path}: truncated (rows {start}-{stop} past its end); "
                                 "rerun the stage that writes it")
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}


class Streamed(NamedTuple):
    """An ``.npz`` member written chunk by chunk: its full shape and dtype up front, then C-order
    chunks (along the first axis) that add up to exactly that shape."""

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: Iterable[np.ndarray]


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray],
              streamed: Mapping[str, Streamed] | None = None) -> None:
    """Write ``path`` as ``np.savez`` does (an uncompressed zip, one ``<key>.npy`` member per
    array; ``np.load`` reads it back), with the members of ``streamed`` written chunk by chunk
    so that an array larger than memory never exists in full."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for key, val in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asanyarray(val), allow_pickle=False)
        for key, (shape, dtype, chunks) in (streamed or {}).items():
            dtype = np.dtype(dtype)
            expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            written = 0
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fid:
                np.lib.format.write_array_header_1_0(fid, {
                    "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                    "shape": tuple(int(s) for s in shape)})
                for chunk in chunks:
                    data = np.ascontiguousarray(chunk, dtype=dtype)
                    if data.shape[1:] != tuple(shape[1:]):
                        raise ValueError(f"{path}: chunk of {key} has shape {data.shape}, "
                                         f"rows of {tuple(shape[1:])} expected")
                    fid.write(memoryview(data).cast("B"))
                    written += data.nbytes
            if written != expected:
                raise ValueError(f"{path}: {key} got {written} bytes of chunks for shape "
                                 f"{tuple(shape)} ({expected} bytes)")
