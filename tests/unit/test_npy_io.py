"""Row reads with pread and streamed .npz writes (avemo.npy_io)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from avemo.errors import DataStageError
from avemo.npy_io import NpyRows, ScratchArray, Streamed, write_npz


def _mapped(path: Path) -> list[str]:
    return [m for m in Path("/proc/self/maps").read_text().splitlines() if str(path) in m]


@pytest.mark.parametrize("shape,dtype", [((7, 4, 5, 3), np.uint8), ((11, 6), np.float16),
                                         ((5,), np.int64)])
def test_rows_equal_np_load(tmp_path: Path, shape: tuple[int, ...], dtype: type) -> None:
    arr = (np.arange(np.prod(shape)) % 251).astype(dtype).reshape(shape)
    np.save(tmp_path / "a.npy", arr)
    rows = NpyRows(tmp_path / "a.npy")
    assert len(rows) == shape[0] and rows.shape == shape and rows.dtype == arr.dtype
    for lo, hi in ((0, shape[0]), (2, 4), (3, 3), (shape[0] - 1, shape[0] + 5)):
        got = rows.read(lo, hi)
        np.testing.assert_array_equal(got, arr[lo:hi])
        assert got.flags.writeable and got.flags.c_contiguous
    assert not _mapped(tmp_path / "a.npy")  # a pass leaves no mapping behind
    again = pickle.loads(pickle.dumps(rows))  # picklable while open (DataLoader workers)
    np.testing.assert_array_equal(again.read(1, 2), arr[1:2])
    rows.close()
    again.close()


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((10, 8), np.float32))
    rows = NpyRows(tmp_path / "a.npy")
    with open(tmp_path / "a.npy", "r+b") as fh:  # cut it after the header and 3 rows
        fh.truncate(rows.offset + 3 * rows.row_bytes + 5)
    with pytest.raises(DataStageError, match=r"a\.npy: truncated"):
        rows.read(0, 10)
    (tmp_path / "b.npy").write_bytes(b"not an array")
    with pytest.raises(DataStageError, match=r"b\.npy: not a readable \.npy"):
        NpyRows(tmp_path / "b.npy")


def test_write_npz_streams_members(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(6, 4, 3)).astype(np.float32)
    names = np.array(["a", "b", "c", "d", "e", "f"])
    write_npz(tmp_path / "x.npz", {"clip_name": names},
              {"seq": Streamed(seq.shape, np.dtype(np.float32), (seq[i:i + 2] for i in (0, 2, 4)))})
    with np.load(tmp_path / "x.npz") as z:
        assert sorted(z.files) == ["clip_name", "seq"]
        np.testing.assert_array_equal(z["seq"], seq)
        assert z["clip_name"].tolist() == names.tolist()
    with pytest.raises(ValueError, match="seq got"):  # chunks short of the declared shape
        write_npz(tmp_path / "y.npz", {}, {"seq": Streamed(seq.shape, np.dtype(np.float32),
                                                            iter([seq[:5]]))})


def test_scratch_array_reads_and_writes_like_an_ndarray() -> None:
    ref = np.zeros((9, 4, 3), np.float32)
    a = ScratchArray(ref.shape)
    np.testing.assert_array_equal(np.asarray(a), ref)  # zero-filled from the start
    block = np.arange(2 * 12, dtype=np.float32).reshape(2, 4, 3)
    a[np.array([5, 6])] = block
    ref[[5, 6]] = block
    a[slice(7, 20)] = np.ones((2, 4, 3))  # a slice past the end stops at the end
    ref[7:] = 1
    cells = np.full((3, 3), 7.0, np.float32)
    a.set_cells(np.array([0, 0, 8]), np.array([1, 2, 3]), cells)
    ref[[0, 0, 8], [1, 2, 3]] = 7.0
    ix = np.array([6, 0, 5, -1])  # unsorted, repeated neighbours, negative
    for key in (3, -2, slice(2, 7), slice(None, None, 3), ix, (ix, slice(None, 2)),
                (slice(4, 9), slice(1, 3)), np.arange(9) % 2 == 0, (0, 2)):
        got, want = a[key], ref[key]
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.dtype == np.float32
    with pytest.raises(IndexError):
        a[np.array([9])]
    z = a.zeros_like()
    assert z.shape == a.shape and not np.asarray(z).any()
    back = pickle.loads(pickle.dumps(a))  # e.g. a spawned DataLoader worker: its own copy
    np.testing.assert_array_equal(np.asarray(back), ref)
    back[0] = np.zeros((4, 3))
    np.testing.assert_array_equal(a[0], ref[0])  # the copy is independent
