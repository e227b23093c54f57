"""Synthetic MELD-format corpus: layout, decodability, determinism, emotion cue, defects, rerun."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from avemo.errors import ConfigError, DataStageError
from avemo.labels import EMOTIONS, LABEL_FILES, SPLIT_DIRS, SPLITS, clip_name
from avemo.meld import read_labels
from avemo.synthetic import CORPUS_JSON, TEST_PREFIX, generate_corpus
from avemo.synthetic_render import ClipPlan, make_speaker, render_audio, render_frames

SIZES = {"n_train": 8, "n_dev": 7, "n_test": 7}
SMALL = {"width": 48, "height": 32, "fps": 25, "max_duration_s": 1.5}
SENTIMENT_OF = {
    "neutral": {"neutral"},
    "joy": {"positive"},
    "surprise": {"positive", "negative"},
    "anger": {"negative"},
    "sadness": {"negative"},
    "disgust": {"negative"},
    "fear": {"negative"},
}


def _generate(root: Path, seed: int, **kw: Any) -> dict[str, Any]:
    return generate_corpus(root, seed=seed, **SIZES, **SMALL, **kw)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        info = {
            "width": vs.codec_context.width,
            "height": vs.codec_context.height,
            "fps": float(vs.average_rate),
            "has_audio": bool(c.streams.audio),
        }
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    audio = None
    if info["has_audio"]:
        with av.open(str(path)) as c:
            a = c.streams.audio[0]
            info["audio_rate"], info["audio_channels"] = a.rate, a.channels
            audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return frames, audio, info


def _truth(root: Path) -> dict[str, Any]:
    return json.loads((root / CORPUS_JSON).read_text())


def _playable(root: Path) -> list[dict[str, Any]]:
    return [t for t in _truth(root)["clips"] if t["on_disk"] and t["defect"] != "corrupt_clip"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "a"
    summary = _generate(root, seed=7, workers=2)
    assert summary["written"] == summary["clips"] == sum(SIZES.values()) + 1 - 1  # +orphan -missing
    return root


@pytest.fixture(scope="module")
def corpus_same(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "b"
    _generate(root, seed=7, workers=1)  # other worker count: must not matter
    return root


def test_label_csvs(corpus: Path) -> None:
    for split in SPLITS:
        df = read_labels(corpus / LABEL_FILES[split])
        assert len(df) == SIZES[f"n_{split}"]
        assert set(df["emotion"]) == set(EMOTIONS)  # >= 7 rows: every emotion present
        for emo, sent in zip(df["emotion"], df["sentiment"], strict=True):
            assert sent in SENTIMENT_OF[emo]
        assert df["dialogue_id"].min() == 0
        assert sorted(df["dialogue_id"].unique()) == list(range(df["dialogue_id"].max() + 1))
        for _, dia in df.groupby("dialogue_id"):
            assert list(dia["utterance_id"]) == list(range(len(dia)))
            assert (dia["start_s"].diff().dropna() > 0).all()
        dur = df["end_s"] - df["start_s"]
        assert ((dur >= 1.0 - 1e-6) & (dur <= SMALL["max_duration_s"] + 1e-6)).all()
        assert (df["utterance"].str.len() > 0).all() and df["speaker"].nunique() >= 2


def test_clips_decode_at_requested_rates(corpus: Path) -> None:
    truth = _truth(corpus)
    assert truth["params"]["seed"] == 7
    playable = _playable(corpus)
    assert len(playable) == sum(SIZES.values()) - 1  # all but missing and corrupt, plus orphan
    for t in playable:
        path = corpus / t["file"]
        assert path.parent.name == SPLIT_DIRS[t["split"]]
        frames, audio, info = _decode(path)
        assert (info["width"], info["height"], info["fps"]) == (48, 32, 25.0)
        assert frames.shape == (t["n_frames"], 32, 48, 3)
        assert t["duration_s"] == pytest.approx(t["n_frames"] / 25)
        assert 0 <= t["event_start_s"] < t["event_end_s"] <= t["duration_s"] + 1e-6
        if t["defect"] == "no_audio_clip":
            assert audio is None
            continue
        assert (info["audio_rate"], info["audio_channels"]) == (48000, 2)
        # AAC adds up to ~2 frames of priming/padding around the clip's samples.
        assert abs(audio.shape[1] - 48000 * t["duration_s"]) <= 2 * 1024 + 1
        assert 0.002 < float(np.sqrt(np.mean(audio**2))) < 0.5


def test_defects_injected(corpus: Path) -> None:
    defects = _truth(corpus)["defects"]
    assert set(defects) == {
        "missing_clip",
        "corrupt_clip",
        "orphan_clip",
        "prefixed_clip",
        "no_audio_clip",
    }
    labels = {s: set(read_labels(corpus / LABEL_FILES[s])["clip_name"]) for s in SPLITS}

    miss = defects["missing_clip"]
    assert miss["split"] == "dev" and miss["clip_name"] in labels["dev"]
    assert not (corpus / miss["file"]).exists()

    bad = corpus / defects["corrupt_clip"]["file"]
    assert bad.stat().st_size > 0 and defects["corrupt_clip"]["clip_name"] in labels["train"]
    with pytest.raises(av.FFmpegError):
        av.open(str(bad)).close()

    orphan = defects["orphan_clip"]
    assert (corpus / orphan["file"]).exists() and orphan["clip_name"] not in labels["train"]

    pre = defects["prefixed_clip"]
    assert pre["split"] == "test" and pre["clip_name"] in labels["test"]
    folder = corpus / SPLIT_DIRS["test"]
    assert (folder / f"{TEST_PREFIX}{pre['clip_name']}.mp4").exists()
    assert not (folder / f"{pre['clip_name']}.mp4").exists()

    with av.open(str(corpus / defects["no_audio_clip"]["file"])) as c:
        assert not c.streams.audio and c.streams.video

    # No leftover temporary files that a glob for clips would pick up.
    assert not [p for s in SPLITS for p in (corpus / SPLIT_DIRS[s]).glob(".*")]


def test_no_defects_when_disabled_and_param_change_rebuilds(tmp_path: Path) -> None:
    tiny = {"width": 32, "height": 32, "max_duration_s": 1.0, "inject_defects": False}
    root, fresh = tmp_path / "clean", tmp_path / "fresh"
    generate_corpus(root, 3, 0, 0, seed=1, **tiny)
    assert _truth(root)["defects"] == {}
    names = sorted(p.name for p in (root / SPLIT_DIRS["train"]).glob("*.mp4"))
    assert names == [f"{clip_name(0, u)}.mp4" for u in range(3)]
    # Other parameters in the same folder: the old corpus is replaced, not mixed in.
    generate_corpus(root, 4, 0, 0, seed=2, **tiny)
    generate_corpus(fresh, 4, 0, 0, seed=2, **tiny)
    csv = LABEL_FILES["train"]
    assert (root / csv).read_bytes() == (fresh / csv).read_bytes()
    assert _truth(root)["params"]["seed"] == 2
    for name in [f"{clip_name(0, u)}.mp4" for u in range(4)]:
        a, _, _ = _decode(root / SPLIT_DIRS["train"] / name)
        b, _, _ = _decode(fresh / SPLIT_DIRS["train"] / name)
        np.testing.assert_array_equal(a, b)


def test_same_seed_is_identical(corpus: Path, corpus_same: Path) -> None:
    for split in SPLITS:
        a = (corpus / LABEL_FILES[split]).read_bytes()
        assert a == (corpus_same / LABEL_FILES[split]).read_bytes()
    assert _truth(corpus) == _truth(corpus_same)
    for t in _playable(corpus):
        fa, aa, _ = _decode(corpus / t["file"])
        fb, ab, _ = _decode(corpus_same / t["file"])
        np.testing.assert_array_equal(fa, fb)
        if aa is not None:
            np.testing.assert_array_equal(aa, ab)


def test_different_seed_differs(corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "c"
    _generate(other, seed=8)
    assert (corpus / LABEL_FILES["train"]).read_bytes() != (
        other / LABEL_FILES["train"]
    ).read_bytes()
    first = corpus / SPLIT_DIRS["dev"] / "dia0_utt0.mp4"
    fa, _, _ = _decode(first)
    fb, _, _ = _decode(other / SPLIT_DIRS["dev"] / "dia0_utt0.mp4")
    n = min(len(fa), len(fb))
    assert not np.array_equal(fa[:n], fb[:n])


def test_rerun_regenerates_only_deleted_clip(corpus_same: Path) -> None:
    clips = sorted((corpus_same / SPLIT_DIRS["train"]).glob("dia0_utt*.mp4"))
    victim, keeper = clips[0], clips[1]
    before, _, _ = _decode(victim)
    keeper_mtime = keeper.stat().st_mtime_ns
    victim.unlink()
    summary = _generate(corpus_same, seed=7)
    assert summary["written"] == 1 and summary["skipped"] == summary["clips"] - 1
    after, _, _ = _decode(victim)
    np.testing.assert_array_equal(before, after)
    assert keeper.stat().st_mtime_ns == keeper_mtime
    # Complete corpus with equal parameters: nothing to do.
    assert _generate(corpus_same, seed=7)["written"] == 0


def _plan(expressed: str, n_frames: int = 25) -> ClipPlan:
    """A 1 s clip whose expressive event covers it all, at full intensity."""
    return ClipPlan(
        path="",
        entropy=3,
        spawn_key=(1, 0, 0),
        speaker_key=(2, 1),
        n_frames=n_frames,
        fps=25,
        width=64,
        height=64,
        audio_rate=16000,
        audio_channels=1,
        has_audio=True,
        expressed=expressed,
        event_start_s=0.0,
        event_end_s=n_frames / 25,
        base=0.2,
        peak=1.0,
        distractor="",
        distractor_start_s=0.0,
        distractor_end_s=0.0,
        distractor_amp=0.0,
    )


def _f0(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch over 40 ms frames (60-500 Hz)."""
    lo, hi = sr // 500, sr // 60
    est = []
    for s in range(0, x.size - 640, 320):
        seg = x[s : s + 640] - x[s : s + 640].mean()
        ac = np.correlate(seg, seg, "full")[seg.size - 1 :]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            est.append(sr / lag)
    return float(np.median(est))


def _mouth_darkness(frames: np.ndarray) -> float:
    """Dark (lip/mouth) pixels in the lower-middle of the face, averaged over frames."""
    h, w = frames.shape[1:3]
    box = frames[:, int(0.62 * h) : int(0.9 * h), int(0.3 * w) : int(0.7 * w)].astype(float)
    lum = box @ np.array([0.299, 0.587, 0.114])
    return float((lum < 90).mean())


@pytest.mark.parametrize("spawn", [0, 1, 2])
def test_emotion_cue_joy_vs_sadness(spawn: int) -> None:
    """Same speaker, same noise draws: joy's voice is higher and louder and its mouth wider."""
    out = {}
    for emo in ("joy", "sadness"):
        plan = replace(_plan(emo), spawn_key=(1, 0, spawn))
        speaker = make_speaker(plan.entropy, plan.speaker_key)
        rng = np.random.default_rng(np.random.SeedSequence(3, spawn_key=plan.spawn_key))
        audio = render_audio(plan, speaker, rng)[0]
        frames = render_frames(plan, speaker, rng, np.full(plan.n_frames, 0.5))
        out[emo] = (_f0(audio, 16000), float(np.sqrt(np.mean(audio**2))), _mouth_darkness(frames))
    (f_joy, e_joy, m_joy), (f_sad, e_sad, m_sad) = out["joy"], out["sadness"]
    assert f_joy > 1.25 * f_sad  # prototypes: x1.30 vs x0.82 of the speaker's f0
    assert e_joy > 1.5 * e_sad
    assert m_joy > m_sad + 0.02


def test_cue_is_strongest_during_event() -> None:
    """Face parameters move far from neutral only inside the event window."""
    from avemo.synthetic_render import FACE_PROTOTYPES, emotion_weights

    plan = replace(_plan("surprise", n_frames=100), event_start_s=1.5, event_end_s=2.5, peak=0.9)
    t = np.arange(100) / 25
    w = emotion_weights(plan, t)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    inside, outside = w[(t >= 1.6) & (t <= 2.4), 2], w[(t < 1.2) | (t > 2.8), 2]
    assert inside.min() == pytest.approx(0.9) and outside.max() == pytest.approx(0.2)
    assert FACE_PROTOTYPES.shape == (7, 6)


def test_bad_parameters_and_foreign_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="width"):
        generate_corpus(tmp_path / "x", 1, 1, 1, seed=0, width=33)
    foreign = tmp_path / "meld"
    foreign.mkdir()
    (foreign / LABEL_FILES["train"]).write_text("real data")
    with pytest.raises(DataStageError, match="not made by the synthetic generator"):
        generate_corpus(foreign, 1, 0, 0, seed=0, width=32, height=32, max_duration_s=1.0)
    assert (foreign / LABEL_FILES["train"]).read_text() == "real data"
