"""Arrays on disk without whole copies in memory: rows of a ``.npy`` file read on demand
with ``os.pread`` (``NpyRows``), ``.npz`` files written member by member, chunk by chunk
(``write_npz``), and working arrays kept in a temporary file (``ScratchArray``).

Why not a memory map: every page of a map that a process has touched stays counted in its
resident memory until the map is closed, so one pass over a MELD-sized array (an epoch, an
embeddings export) grows a job's RSS by the file's size. A ``pread`` leaves nothing behind
but the copy it returns; the kernel's page cache still keeps the file warm, outside the job.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from avemo.errors import DataStageError


def pread_into(fd: int, out: np.ndarray, offset: int) -> bool:
    """Fill the C-contiguous ``out`` from ``fd`` at ``offset``; False if the file ends first."""
    return out.nbytes == 0 or os.preadv(fd, [memoryview(out).cast("B")], offset) == out.nbytes


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
        if not pread_into(self._fd, out, self.offset + start * self.row_bytes):
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


def pwrite_rows(fd: int, offset: int, row_bytes: int, rows: np.ndarray,
                values: np.ndarray) -> None:
    """Write ``values[k]`` as row ``rows[k]`` of a file of fixed-size rows starting at
    ``offset``; runs of consecutive rows go in one ``pwrite`` each."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    data = np.ascontiguousarray(values).reshape(len(rows), -1)
    if len(rows) == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for lo, hi in zip([0, *breaks], [*breaks, len(rows)], strict=True):
        os.pwrite(fd, memoryview(data[lo:hi]).cast("B"), offset + int(rows[lo]) * row_bytes)


class ScratchArray:
    """A C-order array kept in an unlinked temporary file instead of memory: written with
    ``pwrite``, read with ``pread`` into fresh arrays, so that a job holding a split-sized
    array (the fusion inputs of MELD's train split) keeps only the batch it reads resident.

    ``a[i]``, ``a[lo:hi]``, ``a[rows]`` and ``a[rows, ...rest]`` read along the first axis
    (``rest`` then applies to what was read); ``a[rows] = values`` writes whole rows and
    ``a.set_cells(i, j, values)`` the ``[i, j]`` cells of an array of three or more axes.
    ``np.asarray(a)`` reads it all. Starts zero-filled (a sparse file).
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.float32,
                 folder: str | os.PathLike[str] | None = None) -> None:
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        self._folder = folder
        self._file = tempfile.TemporaryFile(prefix=".avemo-scratch-", dir=folder)
        self._file.truncate(self.shape[0] * self.row_bytes)
        self._fd = self._file.fileno()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _read_run(self, out: np.ndarray, start: int) -> None:
        if not pread_into(self._fd, out, start * self.row_bytes):
            raise OSError(f"scratch file shorter than {self.shape}")

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64).reshape(-1)
        rows = np.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} rows")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip([0, *breaks], [*breaks, len(rows)], strict=True):
            self._read_run(out[lo:hi], int(rows[lo]))
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, slice):
            start, stop, step = first.indices(len(self))
            if step != 1:
                out = self._rows(np.arange(start, stop, step))
            else:
                out = np.empty((max(0, stop - start), *self.shape[1:]), self.dtype)
                self._read_run(out, start)
        elif np.ndim(first) == 0:
            return np.ascontiguousarray(self._rows(np.array([first]))[0][rest])
        else:
            out = self._rows(first)
        # What an ndarray's indexing gives: a C-contiguous array (rest applied after reading).
        return np.ascontiguousarray(out[(slice(None), *rest)]) if rest else out

    def __setitem__(self, rows: Any, values: Any) -> None:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        data = np.broadcast_to(np.asarray(values, dtype=self.dtype),
                               (len(rows), *self.shape[1:]))
        pwrite_rows(self._fd, 0, self.row_bytes, rows, data)

    def set_cells(self, i: np.ndarray, j: np.ndarray, values: np.ndarray) -> None:
        """``a[i[k], j[k]] = values[k]`` (runs of neighbouring cells in one write each)."""
        cell = self.row_bytes // self.shape[1]
        flat = np.asarray(i, dtype=np.int64) * self.shape[1] + np.asarray(j, dtype=np.int64)
        pwrite_rows(self._fd, 0, cell, flat, np.asarray(values, dtype=self.dtype))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def zeros_like(self) -> ScratchArray:
        """A zero-filled scratch array of the same shape and dtype (costs no writes)."""
        return ScratchArray(self.shape, self.dtype, self._folder)

    def close(self) -> None:
        self._file.close()

    def __getstate__(self) -> dict[str, Any]:
        # A worker process (DataLoader with spawn) gets its own copy of the data.
        return {"shape": self.shape, "dtype": self.dtype, "data": np.asarray(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["shape"], state["dtype"])  # type: ignore[misc]
        self[np.arange(self.shape[0])] = state["data"]
