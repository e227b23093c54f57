"""A full disk, in any stage, is one line naming the disk that holds the results: no traceback.

ENOSPC is injected (a write that raises it, or /dev/full, which answers every write with it):
the message must come from what the stage raises, whatever library raised it.
"""

from __future__ import annotations

import errno
import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avemo import faults
from avemo.cli import main
from avemo.evaluation.metrics import prob_columns
from avemo.labels import EMOTIONS, SENTIMENTS

FIX = "Free space and run the same command again"


def _preds(path: Path, n: int = 6) -> str:
    names = [f"dia{i}_utt0" for i in range(n)]
    df = pd.DataFrame({"clip_name": names, "emotion": [EMOTIONS[i % 7] for i in range(n)],
                       "sentiment": [SENTIMENTS[i % 3] for i in range(n)]})
    for task, k in (("emotion", 7), ("sentiment", 3)):
        for col in prob_columns(task):
            df[col] = 1.0 / k
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def late_job(tmp_path: Path) -> list[str]:
    """`avemo late` as its rule runs it, under a results folder holding run_guard's lock."""
    results = tmp_path / "results"
    (results / "fusion" / "late" / "seed0").mkdir(parents=True)
    (results / faults.LOCK_NAME).write_text("{}")
    inputs = {stream: {s: _preds(tmp_path / f"{stream}_{s}.parquet") for s in ("dev", "test")}
              for stream in ("visual", "audio")}
    return ["late", "--seed", "0", "--out", str(results / "fusion" / "late" / "seed0"),
            "--inputs", json.dumps(inputs), "--params", '{"method": "weighted"}']


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_enospc_in_a_stage_is_one_line_naming_the_results_disk(late_job, tmp_path, capsys,
                                                               monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    assert main(late_job) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("avemo late: error: no space left on device: the disk holding "
                           f"{tmp_path / 'results'} is full (")
    assert "free of" in line and FIX in line
    assert not list((tmp_path / "results" / "fusion").rglob("*.parquet"))  # nothing half-done


def test_pyarrow_and_torch_write_failures_are_recognised(late_job, tmp_path, capsys,
                                                         monkeypatch):
    import avemo.fusion.late as late

    torch = pytest.importorskip("torch")
    # /dev/full: every write fails with ENOSPC; torch's zip writer says only "unexpected pos".
    monkeypatch.setattr(late, "late_fusion",
                        lambda *a, **k: torch.save({"w": torch.zeros(10_000)}, "/dev/full"))
    assert main(late_job) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"a file under {tmp_path / 'results'} could not be written (torch: " in line, line
    assert FIX in line
    # ... and on a disk that is all but full, it is said to be full.
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(faults.shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 4096))
    assert main(late_job) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is full (4.0 KiB free of 10.0 GiB now)" in line and FIX in line
    monkeypatch.setattr(late, "late_fusion", lambda *a, **k: pd.DataFrame(
        {"a": np.arange(100_000)}).to_parquet("/dev/full"))
    assert main(late_job) == 2
    assert "no space left on device" in _one_line(capsys.readouterr().err)


def test_other_errors_keep_their_traceback(late_job, monkeypatch):
    import avemo.fusion.late as late

    def bug(*args, **kwargs):
        raise KeyError("a bug, not the disk")

    monkeypatch.setattr(late, "late_fusion", bug)
    with pytest.raises(KeyError):
        main(late_job)


def test_results_root_is_the_folder_with_the_lock(tmp_path):
    (tmp_path / "r" / "models").mkdir(parents=True)
    (tmp_path / "r" / faults.LOCK_NAME).write_text("{}")
    assert faults.results_root(tmp_path / "r" / "models" / "x" / "seed0") == tmp_path / "r"
    assert faults.results_root(tmp_path / "elsewhere" / "out") == tmp_path


def test_failed_run_on_a_full_disk_says_so_on_the_terminal(tmp_path, monkeypatch):
    """onerror: the main process names the full disk (a job's log may not have been written)."""
    from types import SimpleNamespace

    from avemo import run_guard

    errors: list[str] = []
    monkeypatch.setattr(run_guard, "_logger", lambda: SimpleNamespace(error=errors.append))
    cfg = {"results_dir": str(tmp_path / "results")}
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(faults.shutil, "disk_usage", lambda p: usage(8 << 30, 8 << 30, 0))
    assert run_guard.on_error(cfg) is not None
    assert errors == [f"DiskFullError: no space left on device: the disk holding {tmp_path} is "
                      f"full (0 B free of 8.0 GiB). {FIX} (finished steps are kept)."]
    monkeypatch.setattr(faults.shutil, "disk_usage", lambda p: usage(8 << 30, 1 << 30, 7 << 30))
    assert run_guard.on_error(cfg) is None and len(errors) == 1  # a failure of another kind
