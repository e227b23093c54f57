"""The QC table: manifest x frames x audio per clip, from the paths it is given (no layout)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from avemo.errors import DataStageError
from avemo.manifest import MANIFEST_COLUMNS
from avemo.qc import COLUMNS, build_qc


def _inputs(root: Path, split: str) -> tuple[Path, Path, Path]:
    """A manifest of 3 clips (the third excluded), and the frames/audio clip tables of the two
    usable ones, in folders whose names say nothing about the split."""
    names = [f"{split}_c{i}" for i in range(3)]
    manifest = pd.DataFrame({c: [0] * 3 for c in MANIFEST_COLUMNS}).assign(
        split=split, clip_name=names, exists=[True, True, False], ok=[True, True, False],
        qc_reason=["", "", "missing"], duration_s=[2.0, 3.0, 0.0], start_s=[0.0] * 3,
        end_s=[1.5, 3.0, 1.0],
    )
    mpath = root / f"m_{split}.parquet"
    manifest.to_parquet(mpath)
    fdir, adir = root / f"f_{split}", root / f"a_{split}"
    fdir.mkdir()
    adir.mkdir()
    pd.DataFrame({"clip_name": names[:2], "ok": [True, False], "n_frames": [4, 0],
                  "face_ratio": [0.5, 0.0], "reason": ["", "decode_failed"]}).to_parquet(
        fdir / "clips.parquet")
    pd.DataFrame({"clip_name": names[:2], "mask": [False, True],
                  "reason": ["no_audio", ""]}).to_parquet(adir / "clips.parquet")
    return mpath, fdir, adir


def test_build_qc_joins_the_given_files(tmp_path: Path) -> None:
    given = {s: _inputs(tmp_path, s) for s in ("dev", "train")}
    out = tmp_path / "out" / "clips.csv"
    qc = build_qc({s: g[0] for s, g in given.items()}, {s: g[1] for s, g in given.items()},
                  {s: g[2] for s, g in given.items()}, out)
    assert list(qc.columns) == COLUMNS and list(qc["split"]) == ["dev"] * 3 + ["train"] * 3
    back = pd.read_csv(out)
    assert list(back.columns) == COLUMNS and back["clip_name"].tolist() == qc["clip_name"].tolist()
    dev = qc[qc["split"] == "dev"].set_index("clip_name")
    assert dev.loc["dev_c0", ["frames_ok", "n_frames", "audio_ok", "audio_reason"]].tolist() == [
        True, 4, False, "no_audio"]
    assert dev.loc["dev_c1", ["frames_ok", "frames_reason", "audio_ok"]].tolist() == [
        False, "decode_failed", True]
    excluded = dev.loc["dev_c2"]
    assert not excluded["frames_ok"] and not excluded["audio_ok"]
    assert excluded["frames_reason"] == excluded["audio_reason"] == "excluded_by_manifest"
    assert dev.loc["dev_c0", "duration_mismatch_s"] == pytest.approx(0.5)


def test_build_qc_needs_the_same_splits_everywhere(tmp_path: Path) -> None:
    m, f, a = _inputs(tmp_path, "dev")
    with pytest.raises(DataStageError, match="same splits"):
        build_qc({"dev": m}, {"dev": f}, {}, tmp_path / "clips.csv")
    assert not (tmp_path / "clips.csv").exists()
