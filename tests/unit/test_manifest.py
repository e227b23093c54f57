"""Clip probing (avemo.media) and the manifest stage (avemo.manifest) on tiny generated clips."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from avemo.errors import DataStageError
from avemo.labels import LABEL_FILES, SPLIT_DIRS, SPLITS
from avemo.manifest import MANIFEST_COLUMNS, build_manifests, read_manifest, usable
from avemo.media import probe_clip
from avemo.meld import write_labels


def make_clip(
    path: Path, seconds: float = 1.0, video: bool = True, audio: bool = True, fps: int = 25
) -> Path:
    """Encode a tiny 32x32 mpeg4 + mono AAC clip with PyAV."""
    size, rate = 32, 16000
    with av.open(str(path), "w") as out:
        # Every stream must exist before the first mux (the header is written then).
        vs = out.add_stream("mpeg4", rate=fps) if video else None
        aus = out.add_stream("aac", rate=rate, layout="mono") if audio else None
        if vs is not None:
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
            for i in range(round(seconds * fps)):
                img = np.full((size, size, 3), (i * 9) % 255, np.uint8)
                out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(vs.encode())
        if aus is not None:
            n = round(seconds * rate)
            wave = (0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 1024], format="flt", layout="mono"
                )
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(aus.encode(frame))
            out.mux(aus.encode())
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    good = make_clip(d / "good.mp4")
    data = good.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(bytes(range(256)) * 8)
    return {
        "good": good,
        "long": make_clip(d / "long.mp4", seconds=2.0),
        "no_audio": make_clip(d / "no_audio.mp4", audio=False),
        "no_video": make_clip(d / "no_video.mp4", video=False),
        "truncated": d / "truncated.mp4",
        "empty": d / "empty.mp4",
        "garbage": d / "garbage.mp4",
    }


# --- probe_clip ------------------------------------------------------------------------------


def test_probe_good_clip(clips: dict[str, Path]) -> None:
    info = probe_clip(clips["good"])
    assert info["error"] == ""
    assert info["exists"] and info["has_video"] and info["has_audio"]
    assert info["duration_s"] == pytest.approx(1.0, abs=0.1)
    assert info["fps"] == pytest.approx(25.0)
    assert (info["width"], info["height"]) == (32, 32)
    assert (info["audio_rate"], info["audio_channels"]) == (16000, 1)
    assert info["size_bytes"] == clips["good"].stat().st_size


def test_probe_missing_stream(clips: dict[str, Path]) -> None:
    na = probe_clip(clips["no_audio"])
    assert na["has_video"] and not na["has_audio"] and na["audio_rate"] == 0
    assert "no audio" in na["error"]
    nv = probe_clip(clips["no_video"])
    assert nv["has_audio"] and not nv["has_video"] and math.isnan(nv["fps"])
    assert nv["width"] == 0 and "no video" in nv["error"]


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage", "missing"])
def test_probe_bad_files_never_raise(clips: dict[str, Path], kind: str, tmp_path: Path) -> None:
    path = clips.get(kind, tmp_path / "missing.mp4")
    info = probe_clip(path)
    assert info["exists"] is (kind != "missing")
    assert not info["has_video"] and not info["has_audio"]
    assert info["error"] != ""
    assert math.isnan(info["duration_s"])


# --- build_manifests -------------------------------------------------------------------------


def _labels(dialogue_ids: list[int]) -> pd.DataFrame:
    n = len(dialogue_ids)
    return pd.DataFrame(
        {
            "dialogue_id": dialogue_ids,
            "utterance_id": [0] * n,
            "speaker": ["Joey"] * n,
            "utterance": ["Hi, there"] * n,
            "emotion": ["joy"] * n,
            "sentiment": ["positive"] * n,
            "season": [1] * n,
            "episode": [2] * n,
            "start_s": [1.0] * n,
            "end_s": [2.0] * n,
        }
    )


def _corpus(root: Path, clips: dict[str, Path]) -> Path:
    """train: every case; dev: one good clip; test: a final_videos_test-prefixed clip."""
    for split in SPLITS:
        (root / SPLIT_DIRS[split]).mkdir(parents=True)
    train = root / SPLIT_DIRS["train"]
    # dia0 good, dia1 missing, dia2 empty, dia3 no_audio, dia4 long, dia5 garbage, dia6 no_video
    for dia, kind in [(0, "good"), (2, "empty"), (3, "no_audio"), (4, "long"), (5, "garbage")]:
        (train / f"dia{dia}_utt0.mp4").write_bytes(clips[kind].read_bytes())
    (train / "dia6_utt0.mp4").write_bytes(clips["no_video"].read_bytes())
    (train / "dia9_utt0.mp4").write_bytes(clips["good"].read_bytes())  # orphan
    (train / "._dia0_utt0.mp4").write_bytes(b"\x00")  # macOS resource fork: ignored
    write_labels(_labels([0, 1, 2, 3, 4, 5, 6]), root / LABEL_FILES["train"])
    (root / SPLIT_DIRS["dev"] / "dia0_utt0.mp4").write_bytes(clips["good"].read_bytes())
    write_labels(_labels([0]), root / LABEL_FILES["dev"])
    test_dir = root / SPLIT_DIRS["test"]
    (test_dir / "final_videos_testdia7_utt0.mp4").write_bytes(clips["good"].read_bytes())
    write_labels(_labels([7]), root / LABEL_FILES["test"])
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_build_manifests(clips: dict[str, Path], tmp_path: Path, workers: int) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    out = tmp_path / "manifest"
    summary = build_manifests(root, out, max_duration_s=1.5, workers=workers)

    train = read_manifest(out / "train.parquet")
    assert list(train.columns) == MANIFEST_COLUMNS
    assert train["clip_name"].tolist() == [f"dia{d}_utt0" for d in range(7)]
    by_name = train.set_index("clip_name")
    expected = {
        "dia0_utt0": (True, ""),
        "dia1_utt0": (False, "missing"),
        "dia2_utt0": (False, "empty_file"),
        "dia3_utt0": (True, ""),  # no audio: kept, the audio stage masks it
        "dia4_utt0": (False, "too_long"),
        "dia5_utt0": (False, "unreadable"),
        "dia6_utt0": (False, "no_video"),
    }
    for name, (ok, reason) in expected.items():
        assert (bool(by_name.at[name, "ok"]), by_name.at[name, "qc_reason"]) == (ok, reason), name
    assert by_name.at["dia1_utt0", "clip_path"] == "" and not by_name.at["dia1_utt0", "exists"]
    assert by_name.at["dia1_utt0", "size_bytes"] == 0
    assert not by_name.at["dia3_utt0", "has_audio"] and by_name.at["dia3_utt0", "has_video"]
    assert by_name.at["dia0_utt0", "duration_s"] == pytest.approx(1.0, abs=0.1)
    assert by_name.at["dia0_utt0", "width"] == 32
    assert Path(by_name.at["dia0_utt0", "clip_path"]).is_absolute()
    assert by_name.at["dia0_utt0", "utterance"] == "Hi, there"
    assert train["dialogue_id"].dtype == "int64" and train["ok"].dtype == bool

    test = read_manifest(out / "test.parquet")
    assert test["ok"].tolist() == [True]
    assert Path(test["clip_path"].iloc[0]).name == "final_videos_testdia7_utt0.mp4"
    assert usable(train)["clip_name"].tolist() == ["dia0_utt0", "dia3_utt0"]

    qc = pd.read_csv(out / "qc.csv", keep_default_na=False)
    assert list(qc.columns) == ["split", "clip_name", "stage", "reason", "detail"]
    assert set(qc["stage"]) == {"manifest"}
    pairs = set(zip(qc["clip_name"], qc["reason"], strict=True))
    assert ("dia9_utt0", "orphan_clip") in pairs
    assert ("dia3_utt0", "no_audio") in pairs
    assert ("dia4_utt0", "too_long") in pairs
    assert len(qc[qc["split"] == "train"]) == 7  # 6 problems + 1 orphan
    assert len(qc[qc["split"] != "train"]) == 0

    assert summary["train"] == {
        "rows": 7,
        "ok": 2,
        "empty_file": 1,
        "missing": 1,
        "no_audio": 1,
        "no_video": 1,
        "orphan_clip": 1,
        "too_long": 1,
        "unreadable": 1,
    }
    assert summary["dev"] == {"rows": 1, "ok": 1}
    assert not list(out.glob(".*"))  # atomic writes leave no temporaries


def _add_clip(root: Path, split: str, dia: int, clip: Path) -> None:
    """One more labelled clip (dia{dia}_utt0) in ``split``."""
    (root / SPLIT_DIRS[split] / f"dia{dia}_utt0.mp4").write_bytes(clip.read_bytes())
    label_file = root / LABEL_FILES[split]
    rows = pd.read_csv(label_file)
    write_labels(pd.concat([_labels(list(rows["Dialogue_ID"])), _labels([dia])]), label_file)


def test_zero_duration(clips: dict[str, Path], tmp_path: Path) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    for split in ("dev", "test"):  # each split keeps one usable (2 s) clip
        _add_clip(root, split, 8, clips["long"])
    build_manifests(root, tmp_path / "m", min_duration_s=1.5, max_duration_s=60.0)
    dev = read_manifest(tmp_path / "m" / "dev.parquet")
    assert dev["qc_reason"].tolist() == ["zero_duration", ""] and not dev["ok"].iloc[0]


def test_header_only_split_stops_at_the_manifest(clips: dict[str, Path], tmp_path: Path) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    label_file = root / LABEL_FILES["test"]
    label_file.write_text(label_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataStageError) as err:
        build_manifests(root, tmp_path / "m")
    msg = str(err.value)
    assert msg.startswith(f"{label_file}: no rows (only a header)") and "'test'" in msg
    assert "meld.root" in msg and "\n" not in msg
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_split_without_a_usable_clip_stops_at_the_manifest(clips: dict[str, Path],
                                                           tmp_path: Path) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    test_dir = root / SPLIT_DIRS["test"]
    _add_clip(root, "test", 8, clips["empty"])
    (test_dir / "final_videos_testdia7_utt0.mp4").unlink()  # every test clip missing or bad
    with pytest.raises(DataStageError) as err:
        build_manifests(root, tmp_path / "m")
    msg = str(err.value)
    assert msg.startswith(f"{test_dir}: no usable clip for split 'test'"), msg
    assert "none of the 2 rows of test_sent_emo.csv" in msg
    assert "1 missing" in msg and "1 empty_file" in msg and "\n" not in msg
    assert not (tmp_path / "m").exists()


def test_missing_inputs_raise(clips: dict[str, Path], tmp_path: Path) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    (root / LABEL_FILES["dev"]).unlink()
    with pytest.raises(DataStageError, match="dev_sent_emo.csv.*meld.root"):
        build_manifests(root, tmp_path / "m")
    assert not (tmp_path / "m" / "train.parquet").exists()  # nothing half-written
    write_labels(_labels([0]), root / LABEL_FILES["dev"])
    (root / SPLIT_DIRS["test"] / "final_videos_testdia7_utt0.mp4").unlink()
    (root / SPLIT_DIRS["test"]).rmdir()
    with pytest.raises(DataStageError, match="output_repeated_splits_test"):
        build_manifests(root, tmp_path / "m")


def test_read_manifest_validates(tmp_path: Path) -> None:
    with pytest.raises(DataStageError, match="manifest stage"):
        read_manifest(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"clip_name": ["dia0_utt0"], "ok": [True]}).to_parquet(bad)
    with pytest.raises(DataStageError, match="qc_reason"):
        read_manifest(bad)


def test_end_before_start_is_a_qc_row(clips: dict[str, Path], tmp_path: Path) -> None:
    root = _corpus(tmp_path / "MELD.Raw", clips)
    _add_clip(root, "dev", 8, clips["good"])  # dev keeps one usable clip
    labels = _labels([0, 8])
    labels.loc[0, ["start_s", "end_s"]] = [5.0, 2.5]
    write_labels(labels, root / LABEL_FILES["dev"])
    summary = build_manifests(root, tmp_path / "m")
    dev = read_manifest(tmp_path / "m" / "dev.parquet")
    assert dev["clip_name"].tolist() == ["dia0_utt0", "dia8_utt0"]  # kept in the manifest ...
    assert dev["qc_reason"].tolist() == ["end_before_start", ""]
    assert usable(dev)["clip_name"].tolist() == ["dia8_utt0"]  # ... but not trained on
    assert dev["has_video"].iloc[0]  # the clip itself was still probed
    qc = pd.read_csv(tmp_path / "m" / "qc.csv", keep_default_na=False)
    row = qc[qc["split"] == "dev"]
    assert row["reason"].tolist() == ["end_before_start"]
    assert row["clip_name"].tolist() == ["dia0_utt0"]
    detail = row["detail"].iloc[0]
    assert LABEL_FILES["dev"] in detail and "00:00:02,500" in detail and "00:00:05,000" in detail
    assert summary["dev"] == {"rows": 2, "ok": 1, "end_before_start": 1}


def test_manifests_store_no_absolute_path(clips: dict[str, Path], tmp_path: Path) -> None:
    """The same corpus and results under two different folders give byte-identical manifests;
    read_manifest still hands later stages absolute clip paths."""
    outs = []
    for where in ("a", "b"):
        root = _corpus(tmp_path / where / "data" / "MELD.Raw", clips)
        build_manifests(root, tmp_path / where / "manifest", max_duration_s=1.5)
        outs.append(tmp_path / where / "manifest" / "train.parquet")
    assert outs[0].read_bytes() == outs[1].read_bytes()
    stored = pd.read_parquet(outs[1])["clip_path"]
    assert not any(Path(c).is_absolute() for c in stored)
    read = read_manifest(outs[1]).set_index("clip_name")["clip_path"]
    assert Path(read["dia0_utt0"]).is_file() and Path(read["dia0_utt0"]).is_absolute()
    assert str(tmp_path / "b") in read["dia0_utt0"]


def test_map_ahead_keeps_order_and_bounds_pending_calls() -> None:
    """Probes go through map_ahead: results in input order, never more than `ahead` calls
    submitted and unread (Executor.map submits them all, so memory grew with the corpus)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from avemo.manifest import map_ahead

    lock = threading.Lock()
    started: list[int] = []

    def slow_square(x: int) -> int:
        with lock:
            started.append(x)
        time.sleep(0.001 * (x % 3))  # finishing out of order
        return x * x

    items = list(range(50))
    with ThreadPoolExecutor(max_workers=3) as pool:
        out = []
        for i, y in enumerate(map_ahead(pool, slow_square, items, ahead=4)):
            with lock:
                assert len(started) <= i + 4  # i read, at most 4 more submitted
            out.append(y)
    assert out == [x * x for x in items]
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(map_ahead(pool, slow_square, [3], ahead=8)) == [9]
        assert list(map_ahead(pool, slow_square, [], ahead=8)) == []
