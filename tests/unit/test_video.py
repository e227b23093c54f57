"""Frames stage: sampling, decoding, cropping, shard store and the stage function."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import av
import av.logging
import cv2
import numpy as np
import pandas as pd
import pytest

from avemo.errors import ClipError, ConfigError, DataStageError
from avemo.video import face as face_mod
from avemo.video.decode import DecodeError, decode_cv2, decode_pyav, frames_at
from avemo.video.extract import extract_frames
from avemo.video.sampling import STUDY_EVERY_S, sample_times
from avemo.video.store import FrameStore, ShardWriter


# --- synthetic clips ------------------------------------------------------------------------
def _code_frame(n: int, h: int, w: int) -> np.ndarray:
    """Gray frame whose left/right halves encode n in base 16 (robust to mpeg4 quantisation)."""
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = 8 + 15 * (n % 16)
    img[:, w // 2 :] = 8 + 15 * (n // 16)
    return img


def _read_code(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    lo = img[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].mean()
    hi = img[h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].mean()
    return int(round((lo - 8) / 15)) + 16 * int(round((hi - 8) / 15))


def _make_clip(
    path: Path, n: int, fps: int = 25, w: int = 48, h: int = 48, faststart: bool = False
) -> Path:
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = 12  # several keyframes per clip so seeking is exercised
        s.options = {"qscale": "2"}
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(_code_frame(i, h, w), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(8):
            f = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            f.sample_rate, f.pts = 16000, i * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    clips = {
        "dia0_utt0": _make_clip(d / "dia0_utt0.mp4", 50),  # 2 s
        "dia0_utt1": _make_clip(d / "dia0_utt1.mp4", 175),  # 7 s
        "dia0_utt2": _make_clip(d / "dia0_utt2.mp4", 8),  # 0.32 s
        "dia1_utt0": _make_clip(d / "dia1_utt0.mp4", 30, fps=10, w=64, h=32),  # 3 s, 10 fps
        "dia1_utt1": _make_clip(d / "dia1_utt1.mp4", 25),  # 1 s
        "dia2_utt0": _make_audio_only(d / "dia2_utt0.mp4"),
    }
    garbage = d / "dia2_utt1.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    clips["dia2_utt1"] = garbage
    full = clips["dia0_utt1"].read_bytes()
    trunc = d / "dia2_utt2.mp4"
    trunc.write_bytes(full[: len(full) // 2])
    clips["dia2_utt2"] = trunc
    return clips


DURATIONS = {
    "dia0_utt0": 2.0,
    "dia0_utt1": 7.0,
    "dia0_utt2": 0.32,
    "dia1_utt0": 3.0,
    "dia1_utt1": 1.0,
    "dia2_utt0": 0.5,
    "dia2_utt1": 2.0,
    "dia2_utt2": 7.0,
}
BAD = {"dia2_utt0": "no_video", "dia2_utt1": "unreadable", "dia2_utt2": "unreadable"}


# Every formats.md §2 column, so the manifest's own reader accepts the file.
_MANIFEST_DEFAULTS: dict[str, object] = {
    "split": "dev",
    "dialogue_id": 0,
    "utterance_id": 0,
    "season": 1,
    "episode": 1,
    "speaker": "S",
    "utterance": "",
    "emotion": "neutral",
    "sentiment": "neutral",
    "start_s": 0.0,
    "end_s": 1.0,
    "exists": True,
    "size_bytes": 1,
    "has_video": True,
    "has_audio": True,
    "fps": 25.0,
    "width": 48,
    "height": 48,
    "audio_rate": 16000,
    "audio_channels": 1,
    "qc_reason": "",
}


def _write_manifest(path: Path, **cols: list) -> Path:
    df = pd.DataFrame(cols)
    for col, default in _MANIFEST_DEFAULTS.items():
        if col not in df:
            df[col] = default
    df.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def manifest(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = list(corpus)
    return _write_manifest(
        tmp_path_factory.mktemp("manifest") / "dev.parquet",
        clip_name=names + ["dia9_utt9"],
        clip_path=[str(corpus[n]) for n in names] + [""],
        ok=[True] * len(names) + [False],  # the not-ok row must be skipped
        duration_s=[DURATIONS[n] for n in names] + [np.nan],
        fps=[10.0 if n == "dia1_utt0" else 25.0 for n in names] + [np.nan],
    )


# --- sampling -------------------------------------------------------------------------------
def test_every_s_counts_and_spacing() -> None:
    assert STUDY_EVERY_S == 3.0
    t = sample_times(10.0, "every_s")
    np.testing.assert_allclose(t, [1.5, 4.5, 7.5])
    np.testing.assert_allclose(sample_times(9.0, "every_s", every_s=3.0), [1.5, 4.5, 7.5])
    assert len(sample_times(9.1, "every_s", every_s=1.0)) == 9  # 8.5 < 9.1 < 9.5


def test_uniform_k_and_fps() -> None:
    np.testing.assert_allclose(sample_times(8.0, "uniform_k", uniform_k=4), [1, 3, 5, 7])
    assert len(sample_times(0.05, "uniform_k", uniform_k=8)) == 8
    t = sample_times(2.0, "fps", fps=2.0)
    np.testing.assert_allclose(t, [0.25, 0.75, 1.25, 1.75])
    np.testing.assert_allclose(np.diff(t), 0.5)


@pytest.mark.parametrize("policy", ["every_s", "uniform_k", "fps"])
def test_short_clip_has_a_frame(policy: str) -> None:
    t = sample_times(0.3, policy, every_s=3.0, uniform_k=1, fps=1.0)
    np.testing.assert_allclose(t, [0.15])
    assert len(sample_times(float("nan"), policy)) == 1


def test_bad_policy_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"frames\.policy.*every_s, uniform_k, fps"):
        sample_times(3.0, "random")
    with pytest.raises(ConfigError, match=r"frames\.every_s"):
        sample_times(3.0, "every_s", every_s=0)


# --- decoding -------------------------------------------------------------------------------
@pytest.mark.parametrize("decode", [decode_pyav, decode_cv2])
def test_decoded_frames_match_timestamps(decode, corpus: dict[str, Path]) -> None:  # noqa: ANN001
    want = np.array([0.0, 0.5, 1.01, 1.5, 3.3, 6.95])
    d = decode(corpus["dia0_utt1"], want)
    assert d.frames.shape == (6, 48, 48, 3) and d.frames.dtype == np.uint8
    codes = [_read_code(f) for f in d.frames]
    assert codes == d.frame_numbers.tolist()
    np.testing.assert_allclose(d.times, d.frame_numbers / 25.0, atol=1e-6)
    assert np.all(np.abs(d.times - want) <= 0.5 / 25 + 1e-6)
    assert d.duration_s == pytest.approx(7.0, abs=0.05)


def test_decoding_routes_libav_logs_away_from_python(corpus: dict[str, Path]) -> None:
    # `import torchvision` sets PyAV's log level: libav's decoding threads would then call into
    # Python at stream close, where the main thread holds the GIL (a hang, seen in the suite).
    av.logging.set_level(av.logging.ERROR)
    try:
        decode_pyav(corpus["dia0_utt1"], [0.0, 1.0])
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)


def test_unsorted_and_sparse_times_seek(corpus: dict[str, Path]) -> None:
    # 6.51 s after 0.09 s exceeds SEEK_GAP_S; 6.01 alone exercises the initial seek.
    for want in ([6.51, 0.09], [6.01], [0.09, 6.51, 6.61]):
        frames, t, numbers = frames_at(corpus["dia0_utt1"], want)
        assert [_read_code(f) for f in frames] == numbers.tolist()
        np.testing.assert_allclose(t, np.round(np.array(want) * 25) / 25, atol=1e-6)


def test_times_past_end_get_last_frame(corpus: dict[str, Path]) -> None:
    frames, t, numbers = frames_at(corpus["dia0_utt0"], [1.0, 5.0])
    assert numbers.tolist() == [25, 49] and _read_code(frames[1]) == 49


def test_other_fps_and_resolution(corpus: dict[str, Path]) -> None:
    frames, t, numbers = frames_at(corpus["dia1_utt0"], sample_times(3.0, "uniform_k", uniform_k=3))
    assert frames.shape == (3, 32, 64, 3)
    assert numbers.tolist() == [5, 15, 25]
    np.testing.assert_allclose(t, [0.5, 1.5, 2.5], atol=1e-6)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_clips_raise_clip_error(name: str, corpus: dict[str, Path]) -> None:
    with pytest.raises(ClipError, match=name) as e:
        frames_at(corpus[name], [0.1])
    assert isinstance(e.value, DecodeError) and e.value.reason == BAD[name]
    with pytest.raises(ClipError, match=name):  # the OpenCV backend fails the same way
        decode_cv2(corpus[name], [0.1])


def test_truncated_tail_keeps_decodable_frames(tmp_path: Path) -> None:
    # moov first (faststart), then half the media data cut off: the head still decodes.
    full = _make_clip(tmp_path / "full.mp4", 175, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: len(full) // 2])
    d = decode_pyav(cut, [1.0, 6.9])
    assert 1.0 < d.duration_s < 6.0  # the QC signal: decoded duration < header duration
    assert d.frame_numbers[0] == 25 and d.frame_numbers[1] < 150
    assert [_read_code(f) for f in d.frames] == d.frame_numbers.tolist()


# --- cropping -------------------------------------------------------------------------------
def test_face_crop_falls_back_to_centre_crop() -> None:
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 20:80] = 200  # the centred 60×60 square is uniform; the rest black
    out, found = face_mod.face_crop(img, 30)
    assert not found and out.shape == (30, 30, 3)
    np.testing.assert_array_equal(out, face_mod.centre_crop(img, 30))
    assert (out == 200).all()


def test_face_crop_uses_largest_box(monkeypatch: pytest.MonkeyPatch) -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 140:160] = 255
    monkeypatch.setattr(face_mod, "detect_largest_face", lambda rgb: (140, 40, 20, 20))
    out, found = face_mod.face_crop(img, 30, margin=0.25)  # 30×30 box centred on the face
    assert found and out.shape == (30, 30, 3)
    np.testing.assert_array_equal(out[5:25, 5:25], 255)
    assert (out[:5] == 0).all()


def _draw_face(img: np.ndarray, cx: int, cy: int) -> None:
    """A schematic gray face (skin oval, dark eyes/brows/mouth) that the Haar cascade detects."""
    cv2.ellipse(img, (cx, cy), (42, 55), 0, 0, 360, 190, -1)
    for dx in (-17, 17):
        cv2.ellipse(img, (cx + dx, cy - 20), (12, 4), 0, 0, 360, 120, -1)
        cv2.ellipse(img, (cx + dx, cy - 12), (8, 5), 0, 0, 360, 40, -1)
        cv2.line(img, (cx + dx - 11, cy - 24), (cx + dx + 11, cy - 24), 50, 3)
    cv2.ellipse(img, (cx, cy + 5), (5, 12), 0, 0, 360, 160, -1)
    cv2.ellipse(img, (cx, cy + 24), (14, 5), 0, 0, 360, 70, -1)


def test_face_crop_finds_drawn_face() -> None:
    gray = np.full((160, 320), 60, np.uint8)
    _draw_face(gray, 240, 80)  # right of centre: a centre crop would miss most of it
    img = cv2.cvtColor(cv2.GaussianBlur(gray, (5, 5), 0), cv2.COLOR_GRAY2RGB)
    box = face_mod.detect_largest_face(img)
    assert box is not None
    x, y, w, h = box
    assert abs(x + w / 2 - 240) < 15 and abs(y + h / 2 - 80) < 20 and 80 < w < 150
    out, found = face_mod.crop_frame(img, 32, use_face=True)
    assert found and out.shape == (32, 32, 3)
    assert not np.array_equal(out, face_mod.centre_crop(img, 32))


def test_cascade_loads_and_finds_nothing_in_noise() -> None:
    rng = np.random.default_rng(0)
    assert face_mod.detect_largest_face(rng.integers(0, 256, (120, 160, 3), np.uint8)) is None


# --- store ----------------------------------------------------------------------------------
def test_shard_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    clips = {f"c{i}": rng.integers(0, 256, (i % 3 + 1, 8, 8, 3), np.uint8) for i in range(7)}
    w = ShardWriter(tmp_path, shard_clips=3)
    for name, fr in clips.items():
        w.add(name, fr, np.arange(len(fr)) * 0.5, np.arange(len(fr)))
    index = w.close()
    (tmp_path / "clips.parquet").write_bytes(b"")  # FrameStore needs them to exist
    pd.DataFrame({"clip_name": list(clips)}).to_parquet(tmp_path / "clips.parquet")
    (tmp_path / "meta.json").write_text(json.dumps({"size": 8}))
    assert sorted(p.name for p in tmp_path.glob("shard-*.npy")) == [
        "shard-00000.npy",
        "shard-00001.npy",
        "shard-00002.npy",
    ]
    assert index.groupby("clip_name")["shard"].nunique().max() == 1
    store = FrameStore(tmp_path)
    assert store.clip_names == list(clips) and store.meta == {"size": 8}
    for name in reversed(list(clips)):  # random access, any order
        fr, t = store.frames(name)
        np.testing.assert_array_equal(fr, clips[name])
        np.testing.assert_allclose(t, np.arange(len(fr)) * 0.5)
        assert t.dtype == np.float32
    with pytest.raises(KeyError, match="c99"):
        store.frames("c99")
    # Single frames and lazy clips (what the training datasets read) give the same pixels, and
    # a pass over every clip leaves no shard mapped into the process (a memory map's touched
    # pages counted in the job's RSS, growing it by the frames' size at MELD's scale).
    for name, fr in clips.items():
        assert store.n_frames(name) == len(fr)
        np.testing.assert_array_equal(store.frame((name, len(fr) - 1)), fr[-1])
        np.testing.assert_array_equal(store.clip_frames(name), fr)
        np.testing.assert_allclose(store.frames_t_s(name), np.arange(len(fr)) * 0.5)
    with pytest.raises(IndexError, match="c0"):
        store.frame(("c0", 1))
    assert not [m for m in Path("/proc/self/maps").read_text().splitlines() if str(tmp_path) in m]
    again = pickle.loads(pickle.dumps(store))  # DataLoader workers get a pickled store
    np.testing.assert_array_equal(again.frames("c4")[0], clips["c4"])


def test_store_missing_is_data_stage_error(tmp_path: Path) -> None:
    with pytest.raises(DataStageError, match="nope"):
        FrameStore(tmp_path / "nope")
    tmp_path.joinpath("index.parquet").write_bytes(b"")
    with pytest.raises(DataStageError, match="clips.parquet"):
        FrameStore(tmp_path)


# --- stage ----------------------------------------------------------------------------------
def test_extract_frames_end_to_end(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames" / "dev"
    s = extract_frames(manifest, out, policy="every_s", every_s=1.0, size=16, shard_clips=3)
    store = FrameStore(out)
    clips = store.clips.set_index("clip_name")
    assert len(clips) == 8 and "dia9_utt9" not in clips.index
    assert s["n_ok"] == 5 and s["n_failed"] == 3
    for name, reason in BAD.items():
        assert not clips.loc[name, "ok"] and clips.loc[name, "reason"] == reason
        assert clips.loc[name, "n_frames"] == 0 and name not in store
    expect = {n: len(sample_times(DURATIONS[n], "every_s", every_s=1.0)) for n in DURATIONS}
    for name in store.clip_names:
        fr, t = store.frames(name)
        assert fr.shape == (expect[name], 16, 16, 3) and clips.loc[name, "n_frames"] == len(fr)
        rate = 10 if name == "dia1_utt0" else 25
        want = sample_times(DURATIONS[name], "every_s", every_s=1.0)
        assert np.all(np.abs(t - want) <= 0.5 / rate + 1e-5)
    # Clips keep the manifest order; shards hold consecutive groups of 3 clips.
    assert store.clip_names == ["dia0_utt0", "dia0_utt1", "dia0_utt2", "dia1_utt0", "dia1_utt1"]
    assert store.index.groupby("clip_name")["shard"].first().to_dict() == {
        "dia0_utt0": 0,
        "dia0_utt1": 0,
        "dia0_utt2": 0,
        "dia1_utt0": 1,
        "dia1_utt1": 1,
    }
    assert store.meta["policy"] == "every_s" and store.meta["size"] == 16
    assert clips.loc["dia0_utt1", "decoded_duration_s"] == pytest.approx(7.0, abs=0.05)
    assert not store.index["face"].any()


def test_extract_timestamps_are_decoded_frames(manifest: Path, tmp_path: Path) -> None:
    # size == clip size (48, square) so the stored pixels still carry the frame code.
    out = tmp_path / "f"
    extract_frames(manifest, out, policy="fps", fps=4.0, size=48, shard_clips=100)
    store = FrameStore(out)
    for name in ("dia0_utt0", "dia0_utt1", "dia1_utt1"):
        fr, t = store.frames(name)
        rows = store.index[store.index.clip_name == name]
        assert [_read_code(f) for f in fr] == rows["frame_number"].tolist()
        np.testing.assert_allclose(t, rows["frame_number"] / 25.0, atol=1e-5)


def test_workers_two_identical_to_one(manifest: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    kw = dict(policy="uniform_k", uniform_k=3, size=16, shard_clips=2)
    extract_frames(manifest, a, workers=1, **kw)
    extract_frames(manifest, b, workers=2, **kw)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) and "shard-00002.npy" in files
    for name in files:
        if name.endswith(".npy") or name.endswith(".json"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


def test_extract_face_crop_counts_fallbacks(manifest: Path, tmp_path: Path) -> None:
    extract_frames(
        manifest, tmp_path / "f", policy="uniform_k", uniform_k=2, size=16, face_crop=True
    )
    store = FrameStore(tmp_path / "f")
    clips = store.clips.set_index("clip_name")
    assert store.meta["face_crop"] is True and not store.index["face"].any()
    assert (clips.loc[clips.ok, "face_ratio"] == 0.0).all()  # no faces: all centre crops
    assert clips.loc[~clips.ok, "face_ratio"].isna().all()


def test_empty_manifest_gives_valid_empty_output(tmp_path: Path) -> None:
    m = _write_manifest(
        tmp_path / "m.parquet", clip_name=["x"], clip_path=[""], ok=[False], duration_s=[np.nan]
    )
    s = extract_frames(m, tmp_path / "out")
    store = FrameStore(tmp_path / "out")
    assert s["n_clips"] == 0 and store.clip_names == [] and len(store.index) == 0
    assert list(store.clips.columns) == [
        "clip_name",
        "n_frames",
        "ok",
        "reason",
        "face_ratio",
        "decoded_duration_s",
    ]


def test_stage_validates_settings(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="frames.policy"):
        extract_frames(manifest, tmp_path / "o", policy="nope")
    with pytest.raises(DataStageError, match="missing.parquet"):
        extract_frames(tmp_path / "missing.parquet", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_frame_activity_keeps_what_moves_and_drops_the_still_image() -> None:
    from avemo.video.activity import frame_activity

    rng = np.random.default_rng(0)
    still = rng.integers(0, 200, (1, 32, 32, 3), dtype=np.uint8)
    clip = np.repeat(still, 5, axis=0)
    assert not frame_activity(clip, 4).any()  # nothing moves: no activity at all
    clip[2, 24:32, 8:16] = 255  # a patch lights up in one frame (e.g. an opening mouth)
    act = frame_activity(clip, 4).reshape(5, 4, 4)
    assert act[2, 3, 1] > 0.1 and np.abs(act[2]).sum() - act[2, 3, 1] < 1e-6
    assert not np.delete(act, 2, axis=0).any()
    assert frame_activity(clip[:1], 4).shape == (1, 16) and not frame_activity(clip[:1], 4).any()


def test_frame_store_reads_activity_row_for_row(tmp_path: Path) -> None:
    from avemo.video.activity import frame_activity

    rng = np.random.default_rng(1)
    clips = {f"c{i}": rng.integers(0, 255, (i + 2, 16, 16, 3), dtype=np.uint8) for i in range(3)}
    w = ShardWriter(tmp_path / "f", shard_clips=2, activity_grid=4)
    for name, frames in clips.items():
        w.add(name, frames, np.arange(len(frames), dtype=np.float32))
    w.close()
    pd.DataFrame({"clip_name": list(clips)}).to_parquet(tmp_path / "f" / "clips.parquet")
    (tmp_path / "f" / "meta.json").write_text("{}")
    store = FrameStore(tmp_path / "f")
    for name, frames in clips.items():  # across two shards
        act, t = store.activity(name)
        np.testing.assert_allclose(act, frame_activity(frames, 4))
        assert len(t) == len(frames)
    (tmp_path / "f" / "activity-00001.npy").unlink()
    with pytest.raises(DataStageError, match="rerun the frames stage"):
        FrameStore(tmp_path / "f").activity("c2")
