"""Synthetic MELD-format corpus: layout, decodability, determinism, emotion cue, defects, rerun."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest

import avemo.synthetic_render as render_mod
from avemo.errors import ConfigError, DataStageError
from avemo.labels import EMOTIONS, LABEL_FILES, SPLIT_DIRS, SPLITS, clip_name
from avemo.meld import read_labels
from avemo.synthetic import (
    ALIGN_K,
    CORPUS_JSON,
    SENTIMENT_GIVEN_EMOTION,
    TEST_PREFIX,
    TRUTH_COLUMNS,
    TRUTH_CSV,
    generate_corpus,
    plan_corpus,
)
from avemo.synthetic_render import (
    ClipPlan,
    Tiled,
    clip_audio,
    gate,
    make_speaker,
    render_audio,
    render_frames,
)

SIZES = {"n_train": 8, "n_dev": 7, "n_test": 7}
SMALL = {"width": 48, "height": 32, "fps": 25, "max_duration_s": 1.5}
SENTIMENT_OF = {e: {s for s, p in d.items() if p > 0} for e, d in SENTIMENT_GIVEN_EMOTION.items()}


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
    speakers: set[str] = set()
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
        assert (df["utterance"].str.len() > 0).all()
        speakers |= set(df["speaker"])
    assert len(speakers) >= 2  # one 7-clip dialogue may have a single speaker


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


def _plan(expressed: str, n_frames: int = 25, **kw: Any) -> ClipPlan:
    """A ``spread`` clip (the target talks throughout) at full face and voice strength."""
    plan = ClipPlan(
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
        cue="spread",
        expressed=expressed,
        sentiment="neutral",
        face_level=1.0,
        voice_level=1.0,
        event_start_s=0.0,
        event_end_s=n_frames / 25,
        distractor="",
        distractor_sentiment="",
        distractor_speaker_key=(2, 4),
        distractor_start_s=0.0,
        distractor_end_s=0.0,
        distractor_level=0.0,
        nuisance=1.0,
    )
    return replace(plan, **kw)


def _event_plan(**kw: Any) -> ClipPlan:
    """A 3 s ``event`` clip: target talks in [0.6, 1.3] s, a distractor in [1.9, 2.6] s."""
    return _plan(
        "anger",
        n_frames=75,
        cue="event",
        event_start_s=0.6,
        event_end_s=1.3,
        distractor="joy",
        distractor_sentiment="positive",
        distractor_start_s=1.9,
        distractor_end_s=2.6,
        distractor_level=1.0,
        **kw,
    )


def _render(plan: ClipPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mono audio, talk per frame, frames) from the clip's own generator."""
    speaker = make_speaker(plan.entropy, plan.speaker_key)
    rng = np.random.default_rng(np.random.SeedSequence(plan.entropy, spawn_key=plan.spawn_key))
    audio, talk = render_audio(plan, speaker, rng)
    return audio[0], talk, render_frames(plan, speaker, rng, talk)


def test_clips_over_a_minute_repeat_a_short_rendering() -> None:
    """A clip over _LONG_S (MELD's badly cut ones, kept out of every stage by the manifest's
    max_duration_s) repeats its first _TILE_S seconds, never held at full length: memory does
    not grow with the longest clip (279 s took 1.15 GB per worker)."""
    long = replace(_event_plan(), n_frames=25 * 61, event_start_s=30.0, event_end_s=40.0)
    speaker = make_speaker(long.entropy, long.speaker_key)
    rng = np.random.default_rng(np.random.SeedSequence(long.entropy, spawn_key=long.spawn_key))
    audio, talk = clip_audio(long, speaker, rng)
    tile = int(render_mod._TILE_S * long.audio_rate)
    assert isinstance(audio, Tiled) and audio.tile.shape == (1, tile)
    assert audio.shape == (1, 61 * long.audio_rate) and talk.shape == (25 * 61,)
    np.testing.assert_array_equal(audio[:, tile : 2 * tile], audio.tile)
    np.testing.assert_array_equal(audio[:, 3 * tile : 3 * tile + 7], audio.tile[:, :7])  # the end
    np.testing.assert_array_equal(audio[:, tile - 3 : tile + 4],  # across a repeat's edge
                                  np.concatenate([audio.tile[:, -3:], audio.tile[:, :4]], 1))
    np.testing.assert_array_equal(talk[25 * 20 : 25 * 40], talk[: 25 * 20])
    assert _rms_in(audio.tile[0], long.audio_rate, 0, render_mod._TILE_S) > 0.01  # voice in it
    short = _event_plan()  # clips up to _LONG_S are rendered whole, as before
    assert clip_audio(short, speaker, rng)[0].shape == (1, 3 * short.audio_rate)
    assert isinstance(clip_audio(short, speaker, rng)[0], np.ndarray)


def _rms_in(x: np.ndarray, sr: int, start: float, end: float) -> float:
    seg = x[int(start * sr) : int(end * sr)]
    return float(np.sqrt(np.mean(seg**2)))


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


def _mouth_box(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, int(0.62 * h) : int(0.9 * h), int(0.3 * w) : int(0.7 * w)].astype(float)


def _mouth_darkness(frames: np.ndarray) -> np.ndarray:
    """Share of dark (lip/mouth) pixels in the lower-middle of the face, per frame."""
    lum = _mouth_box(frames) @ np.array([0.299, 0.587, 0.114])
    return (lum < 90).mean(axis=(1, 2))


@pytest.mark.parametrize("spawn", [0, 1, 2])
def test_emotion_cue_joy_vs_sadness(spawn: int) -> None:
    """Same speaker, same noise draws: joy's voice is higher and louder, its mouth curves up."""
    out = {}
    for emo in ("joy", "sadness"):
        plan = _plan(emo, n_frames=50, spawn_key=(1, 0, spawn), nuisance=0.3)
        audio, _, frames = _render(plan)
        out[emo] = (_f0(audio, 16000), float(np.sqrt(np.mean(audio**2))), frames)
    (f_joy, e_joy, fr_joy), (f_sad, e_sad, fr_sad) = out["joy"], out["sadness"]
    assert f_joy > 1.25 * f_sad  # prototypes: x1.30 vs x0.82 of the speaker's f0
    assert e_joy > 1.5 * e_sad
    assert _mouth_darkness(fr_joy).mean() > _mouth_darkness(fr_sad).mean() + 0.02


def test_gate_stays_inside_interval() -> None:
    t = np.linspace(0.0, 3.0, 3001)
    g = gate(t, 1.0, 2.0)
    assert g[(t < 1.0) | (t > 2.0)].max() == 0.0
    assert g[(t >= 1.1) & (t <= 1.9)].min() == pytest.approx(1.0)


@pytest.mark.parametrize("spawn", [0, 1])
def test_event_voice_and_mouth_where_planned(spawn: int) -> None:
    """Event cue: voice energy only in the event and distractor intervals; the mouth opens in
    the event (target talks), never in the distractor's (off-screen speaker)."""
    plan = _event_plan(spawn_key=(1, 0, spawn), nuisance=0.3)
    audio, talk, frames = _render(plan)
    sr = 16000
    ev = _rms_in(audio, sr, 0.6, 1.3)
    dis = _rms_in(audio, sr, 1.9, 2.6)
    quiet = max(_rms_in(audio, sr, 0.0, 0.55), _rms_in(audio, sr, 1.35, 1.85))
    assert ev > 4 * quiet and dis > 4 * quiet
    # Without the distractor, its interval is as quiet as the rest.
    alone, _, _ = _render(replace(plan, distractor=""))
    assert _rms_in(alone, sr, 1.9, 2.6) < 0.5 * dis
    assert _rms_in(alone, sr, 0.6, 1.3) == pytest.approx(ev, rel=0.2)
    # Mouth: open while the target talks, closed elsewhere (including the distractor burst).
    t = np.arange(plan.n_frames) / plan.fps
    inside = (t > 0.7) & (t < 1.2)
    outside = (t < 0.55) | (t > 1.35)
    assert talk[outside].max() == 0.0 and talk[inside].mean() > 0.1
    dark = _mouth_darkness(frames)
    assert dark[inside].mean() > dark[outside].mean() + 0.03
    box = _mouth_box(frames)
    assert np.abs(box[inside].mean(0) - box[outside].mean(0)).mean() > 5.0
    # mouth_motion scales how far it opens (only while the target talks).
    _, _, wide = _render(replace(plan, mouth_motion=3.0))
    wide_dark = _mouth_darkness(wide)
    assert wide_dark[inside].mean() - wide_dark[outside].mean() > \
        1.5 * (dark[inside].mean() - dark[outside].mean())
    assert np.abs(wide[outside].astype(int) - frames[outside].astype(int)).max() == 0


@pytest.mark.parametrize(("cue", "event", "distractor"), [
    ("event_start", (0.0, 0.7), (1.5, 2.2)),
    ("event_end", (2.3, 3.0), (0.4, 1.1)),
])
def test_event_at_the_clip_edge_renders_there(
    cue: str, event: tuple[float, float], distractor: tuple[float, float]
) -> None:
    """An event that starts or ends the clip is heard and seen right up to that edge."""
    plan = replace(
        _event_plan(nuisance=0.3), cue=cue, event_start_s=event[0], event_end_s=event[1],
        distractor_start_s=distractor[0], distractor_end_s=distractor[1])
    audio, talk, _ = _render(plan)
    sr = 16000
    inner = (event[0] + 0.1, event[1] - 0.1)
    gap = (min(event[1], distractor[1]) + 0.1, max(event[0], distractor[0]) - 0.1)
    assert _rms_in(audio, sr, *inner) > 4 * _rms_in(audio, sr, *gap)
    t = np.arange(plan.n_frames) / plan.fps
    edge = (t < 0.3) if cue == "event_start" else (t > 2.7)
    assert talk[edge].mean() > 0.1
    assert talk[(t > gap[0]) & (t < gap[1])].max() == 0.0


def test_sentiment_has_its_own_visual_cue() -> None:
    """Same clip, only the sentiment differs: the cheeks are redder when positive."""
    cheeks = {}
    for sentiment in ("positive", "negative"):
        _, _, frames = _render(_plan("neutral", sentiment=sentiment))
        h, w = frames.shape[1:3]
        box = frames[:, int(0.55 * h) : int(0.75 * h), int(0.2 * w) : int(0.8 * w)].astype(float)
        cheeks[sentiment] = float((box[..., 0] - box[..., 2]).mean())
    assert cheeks["positive"] > cheeks["negative"] + 10.0


def _params(**kw: Any) -> dict[str, Any]:
    base = {
        "generator_version": 2,
        "n_train": 2000,
        "n_dev": 7,
        "n_test": 7,
        "seed": 5,
        "width": 32,
        "height": 32,
        "fps": 25,
        "audio_rate": 16000,
        "audio_channels": 1,
        "inject_defects": False,
        "max_duration_s": 12.0,
        "cue": "event",
        "face_strength": 0.8,
        "voice_strength": 0.5,
        "label_noise": 0.15,
        "nuisance": 1.0,
    }
    return base | kw


def test_event_plan_intervals_fit_aligned_frames(tmp_path: Path) -> None:
    """Event and distractor lie in the clip, never overlap, and at least one of the aligned
    models' ALIGN_K uniform frames falls in every event (planning only: nothing rendered)."""
    _, plans, truth, _ = plan_corpus(tmp_path, _params())
    df = pd.DataFrame(truth)
    assert (df["cue"] == "event").all() and df["distractor"].notna().all()
    assert (df["event_frames_dense"] >= 1).all()
    assert (df["distractor"] != df["expressed_emotion"]).all()
    assert (df["distractor_speaker"] != df["speaker"]).all()
    for p in plans:
        d = p.duration_s
        assert 0 <= p.event_start_s < p.event_end_s <= d + 1e-3
        assert 0 <= p.distractor_start_s < p.distractor_end_s <= d + 1e-3
        assert p.event_end_s <= p.distractor_start_s or p.distractor_end_s <= p.event_start_s
        assert p.event_end_s - p.event_start_s > d / ALIGN_K
    # Both orders occur, and long clips get proportionally long events.
    first = np.mean([p.event_start_s < p.distractor_start_s for p in plans])
    assert 0.4 < first < 0.6
    long = [p for p in plans if p.duration_s > 8]
    assert long and min(p.event_end_s - p.event_start_s for p in long) > 1.0


def test_spread_plan_has_no_distractor(tmp_path: Path) -> None:
    _, plans, truth, _ = plan_corpus(tmp_path, _params(n_train=50, cue="spread"))
    assert all(p.distractor == "" for p in plans)
    assert all(p.event_start_s == 0 and p.event_end_s == round(p.duration_s, 3) for p in plans)
    assert all(t["distractor"] is None and t["event_frames_dense"] == ALIGN_K for t in truth)


def _event_truth(tmp_path: Path, **kw: Any) -> pd.DataFrame:
    """The truth records of a planned corpus (planning only: nothing rendered)."""
    return pd.DataFrame(plan_corpus(tmp_path, _params(n_train=400, **kw))[2])


def test_event_start_world_puts_the_event_first(tmp_path: Path) -> None:
    """``event_start``: the truth file's event starts every clip, the distractor follows it
    without overlap, and (tied length) an aligned frame still lies in the event."""
    df = _event_truth(tmp_path, cue="event_start")
    assert (df["cue"] == "event_start").all() and df["distractor"].notna().all()
    assert (df["event_start_s"] == 0.0).all()
    assert (df["distractor_start_s"] > df["event_end_s"]).all()
    assert (df["distractor_end_s"] <= df["duration_s"] + 1e-3).all()
    assert (df["event_frames_dense"] >= 1).all()
    # The distractor's start varies (it is placed anywhere after the event).
    assert (df["distractor_start_s"] - df["event_end_s"]).std() > 0.1


def test_event_end_world_puts_the_event_last(tmp_path: Path) -> None:
    df = _event_truth(tmp_path, cue="event_end")
    assert (df["cue"] == "event_end").all() and df["distractor"].notna().all()
    assert np.allclose(df["event_end_s"], df["duration_s"], atol=1e-3)
    assert (df["distractor_end_s"] < df["event_start_s"]).all()
    assert (df["distractor_start_s"] >= 0).all()
    assert (df["event_frames_dense"] >= 1).all()


def test_event_world_places_events_anywhere(tmp_path: Path) -> None:
    """``event`` (unchanged): neither always at the start nor always at the end."""
    df = _event_truth(tmp_path)
    at_start = (df["event_start_s"] < 0.05).mean()
    at_end = (df["duration_s"] - df["event_end_s"] < 0.05).mean()
    assert at_start < 0.5 and at_end < 0.5


def test_event_length_independent_of_the_dense_count(tmp_path: Path) -> None:
    """``event_length_s: [lo, hi]``: lengths in U(lo, hi) whatever the clip's length (only a
    clip too short to hold both bursts shrinks them), so long clips' events can miss every
    dense frame; tied, they never do."""
    df = _event_truth(tmp_path, event_length_s=[0.3, 0.6])
    length = df["event_end_s"] - df["event_start_s"]
    assert (length <= 0.6 + 1e-3).all()
    long = df["duration_s"] > 4.0
    assert (length[long] >= 0.3 - 1e-3).all()
    assert abs(np.corrcoef(df.loc[long, "duration_s"], length[long])[0, 1]) < 0.2
    assert (df.loc[long, "event_frames_dense"] == 0).any()
    tied = _event_truth(tmp_path / "tied")
    tied_len = tied["event_end_s"] - tied["event_start_s"]
    assert np.corrcoef(tied["duration_s"], tied_len)[0, 1] > 0.5


@pytest.mark.parametrize("k", [4, 16])
def test_tied_event_length_follows_the_configured_dense_count(tmp_path: Path, k: int) -> None:
    """The dense count comes from the config (the aligned frame set's ``uniform_k``), not a
    constant: the tied law keeps >= 1 of *k* frames in every event, and the truth file counts
    frames of that set."""
    from avemo import params as P
    from avemo.config import load_config
    from avemo.synthetic import corpus_params

    cfg = load_config(REPO / "config.yaml")
    cfg["frames"]["sets"][cfg["audio"]["aligned_frame_set"]]["uniform_k"] = k
    job = P.synthetic(cfg)
    assert job["align_k"] == k and job["event_length_s"] is None
    params = corpus_params(**{**job, "n_train": 300})
    assert params["align_k"] == k
    _, plans, truth, _ = plan_corpus(tmp_path, params)
    df = pd.DataFrame(truth)
    assert (df["event_frames_dense"] >= 1).all()
    long = [p for p in plans if p.duration_s > 8]
    assert long and all(p.event_end_s - p.event_start_s > p.duration_s / k for p in long)
    assert (df.loc[df["cue"] == "event", "event_frames_dense"] <= k).all()


def test_event_length_and_dense_count_are_checked(tmp_path: Path) -> None:
    from avemo.synthetic import corpus_params

    with pytest.raises(ConfigError, match="event_length_s"):
        corpus_params(7, 7, 7, seed=0, event_length_s=[0.8, 0.2])
    with pytest.raises(ConfigError, match="align_k"):
        corpus_params(7, 7, 7, seed=0, align_k=0)
    with pytest.raises(ConfigError, match="event_length_s"):  # no frame count to tie it to
        corpus_params(7, 7, 7, seed=0, align_k=None)
    assert corpus_params(7, 7, 7, seed=0, align_k=None, cue="spread")["align_k"] is None
    # Defaults add no key: a corpus made before these settings keeps its parameters.
    default = corpus_params(7, 7, 7, seed=0)
    assert "align_k" not in default and "event_length_s" not in default


def test_sentiment_not_a_function_of_emotion(tmp_path: Path) -> None:
    labels, plans, _, _ = plan_corpus(tmp_path, _params())
    df = labels["train"]
    table = pd.crosstab(df["emotion"], df["sentiment"], normalize="index")
    assert table.loc["neutral", "neutral"] < 0.85  # neutral talk is sometimes warm or cold
    assert table.loc["neutral", ["positive", "negative"]].min() > 0.05
    assert table.loc["surprise", ["positive", "negative"]].min() > 0.25
    # The sentiment cue follows the label's sentiment, not the emotion.
    assert [p.sentiment for p in plans[: len(df)]] == list(df["sentiment"])
    # Label shares stay MELD-like: always-neutral weighted F1 near MELD's 0.31.
    share = float((df["emotion"] == "neutral").mean())
    assert 0.43 < share < 0.51
    assert 0.27 < share * 2 * share / (1 + share) < 0.34


def test_label_shares_are_quotas(tmp_path: Path) -> None:
    """Every split gets MELD's shares (not iid draws), so always-neutral scores ~0.30 wF1."""
    labels, _, _, _ = plan_corpus(tmp_path, _params(n_train=280, n_dev=60, n_test=90))
    test = labels["test"]["emotion"].value_counts().to_dict()
    assert test == {
        "neutral": 42,
        "joy": 15,
        "surprise": 11,
        "anger": 10,
        "sadness": 6,
        "disgust": 3,
        "fear": 3,
    }
    for df in labels.values():
        share = float((df["emotion"] == "neutral").mean())
        assert 0.45 < share < 0.49


def test_label_noise_and_strength_settings(tmp_path: Path) -> None:
    _, plans, truth, _ = plan_corpus(tmp_path, _params(label_noise=0.0, face_strength=0.4))
    assert not any(t["label_noise"] for t in truth)
    assert max(p.face_level for p in plans) <= 0.4 and min(p.face_level for p in plans) >= 0.2
    _, _, noisy, _ = plan_corpus(tmp_path, _params(label_noise=0.5))
    assert 0.4 < np.mean([t["label_noise"] for t in noisy]) < 0.6


def test_truth_csv_matches_plans(corpus: Path) -> None:
    df = pd.read_csv(corpus / TRUTH_CSV)
    assert tuple(df.columns) == TRUTH_COLUMNS
    clips = _truth(corpus)["clips"]
    assert len(df) == len(clips)
    plans = {p["path"]: p for p in _truth(corpus)["plans"]}
    for row in df.itertuples():
        p = plans[row.file]
        assert (row.event_start_s, row.event_end_s) == (p["event_start_s"], p["event_end_s"])
        assert row.distractor == p["distractor"] and row.cue == "event"
    # MELD-format only: the sidecar is the one extra file beside the label CSVs and folders.
    names = {p.name for p in corpus.iterdir() if not p.name.startswith(".")}
    assert names == {*LABEL_FILES.values(), *SPLIT_DIRS.values(), CORPUS_JSON, TRUTH_CSV}


def test_bad_parameters_and_foreign_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="width"):
        generate_corpus(tmp_path / "x", 1, 1, 1, seed=0, width=33)
    foreign = tmp_path / "meld"
    foreign.mkdir()
    (foreign / LABEL_FILES["train"]).write_text("real data")
    with pytest.raises(DataStageError, match="not made by the synthetic generator"):
        generate_corpus(foreign, 1, 0, 0, seed=0, width=32, height=32, max_duration_s=1.0)
    assert (foreign / LABEL_FILES["train"]).read_text() == "real data"
    with pytest.raises(ConfigError, match="cue"):
        generate_corpus(tmp_path / "y", 1, 1, 1, seed=0, cue="everywhere")
    with pytest.raises(ConfigError, match="face_strength"):
        generate_corpus(tmp_path / "z", 1, 1, 1, seed=0, face_strength=1.5)


# -- presets: the demo's plan is fixed, meld_scale is MELD-sized ---------------------------------

REPO = Path(__file__).resolve().parents[2]
# sha256 of each preset's plan (label CSVs, clip plans, ground truth, defects) with config.yaml's
# settings, recorded before presets could set a duration law or label counts: the demo's and
# tiny's numbers must not change (a deliberate change of the demo updates these digests).
# Updated once when ClipPlan gained ``mouth_motion``: with that field (1.0) left out, the plans
# hash to the digests recorded before it (66803d41... tiny, 172ba0da... demo). Updated once more
# when the truth columns event/distractor_frames_k8 became *_frames_dense (the dense count is
# read from the config): with the old names the plans hash to the previous digests (7a3dffb2...
# tiny, cdeba4d8... demo), so no draw changed.
PLAN_DIGESTS = {
    "tiny": "bbfb8231a5d466eb07e13dba17b7685e11ddff213d3e3a52ff9e932191557863",
    "demo": "2fe34ffde2908896a995c7e7cf66e6b8ca536f968d9e8e0a16979c47b6c10eca",
}
PRESET_PARAMS = {
    "tiny": {"n_train": 24, "n_dev": 10, "n_test": 10, "max_duration_s": 4.0},
    "demo": {"n_train": 280, "n_dev": 60, "n_test": 90, "max_duration_s": 12.0},
}


def _preset_plan(preset: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    from avemo import params as P
    from avemo.config import load_config
    from avemo.synthetic import corpus_params

    cfg = load_config(REPO / "config.yaml")
    cfg["synthetic"]["preset"] = preset
    job = P.synthetic(cfg)
    return job, plan_corpus(Path("corpus"), corpus_params(**job))


def _plan_digest(labels: dict, plans: list, truth: list, defects: dict) -> str:
    import hashlib
    from dataclasses import asdict

    h = hashlib.sha256()
    for split in SPLITS:
        h.update(labels[split].to_csv(index=False).encode())
    h.update(json.dumps([asdict(p) for p in plans], sort_keys=True).encode())
    h.update(json.dumps(truth, sort_keys=True, default=str).encode())
    h.update(json.dumps(defects, sort_keys=True).encode())
    return h.hexdigest()


@pytest.mark.parametrize("preset", sorted(PLAN_DIGESTS))
def test_demo_and_tiny_plans_unchanged(preset: str) -> None:
    """Same job parameters (no rerun of the demo) and the same plan, draw for draw."""
    job, plan = _preset_plan(preset)
    assert "duration" not in job and "label_counts" not in job
    assert {k: job[k] for k in PRESET_PARAMS[preset]} == PRESET_PARAMS[preset]
    assert _plan_digest(*plan) == PLAN_DIGESTS[preset]


def test_meld_scale_preset_plan() -> None:
    """MELD's split sizes, per-class counts (neutral ~47 %, fear and disgust < 300 in train)
    and duration distribution (mean ~3.17 s, median ~2.46 s, a few clips over a minute)."""
    job, (labels, _, truth, defects) = _preset_plan("meld_scale")
    assert {s: len(labels[s]) for s in SPLITS} == {"train": 9989, "dev": 1109, "test": 2610}
    train = labels["train"]["emotion"].value_counts().to_dict()
    assert train == {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109,
                     "sadness": 683, "disgust": 271, "fear": 268}
    for split in SPLITS:
        assert labels[split]["emotion"].value_counts().to_dict() == job["label_counts"][split]
    assert train["fear"] < 300 and train["disgust"] < 300
    share = sum(len(df[df["emotion"] == "neutral"]) for df in labels.values()) / 13708
    assert 0.45 < share < 0.49
    df = pd.DataFrame(truth)
    d = df.loc[df["labelled"], "duration_s"]
    assert 3.0 < d.mean() < 3.35 and 2.35 < d.median() < 2.6
    assert 2 <= (d > 60).sum() <= 20 and d.max() <= 305
    assert d.quantile(0.99) > 9 and d.min() < 0.6  # long tail, and short clips like MELD's
    assert 11.5 < d.sum() / 3600 < 12.5  # about 12 hours of audio
    assert set(defects) == {"missing_clip", "corrupt_clip", "orphan_clip", "prefixed_clip",
                            "no_audio_clip"}
    # Labels and timestamps agree with the durations (consecutive within a dialogue).
    dur = labels["train"]["end_s"] - labels["train"]["start_s"]
    assert np.allclose(dur.to_numpy(), df.loc[df["labelled"] & (df["split"] == "train"),
                                              "duration_s"].to_numpy(), atol=2e-3)


def test_preset_duration_law_and_label_counts_are_checked(tmp_path: Path) -> None:
    counts = {s: dict.fromkeys(EMOTIONS, 1) for s in SPLITS}
    with pytest.raises(ConfigError, match="label_counts"):
        generate_corpus(tmp_path / "a", 8, 7, 7, seed=0, label_counts=counts)  # 7 != 8
    with pytest.raises(ConfigError, match="duration"):
        generate_corpus(tmp_path / "b", 7, 7, 7, seed=0, duration={"median_s": 20.0})
    with pytest.raises(ConfigError, match="tail_max_s"):
        generate_corpus(tmp_path / "c", 7, 7, 7, seed=0, duration={"tail_share": 0.1})
    # A law of its own: every clip inside it (no tail), exact counts per split.
    from avemo.synthetic import corpus_params

    params = corpus_params(7, 7, 7, seed=0, label_counts=counts,
                           duration={"median_s": 0.8, "sigma": 0.3, "min_s": 0.5, "max_s": 1.0})
    labels, _, truth, _ = plan_corpus(tmp_path, params)
    assert all(0.48 <= t["duration_s"] <= 1.0 for t in truth)
    assert all(set(df["emotion"]) == set(EMOTIONS) for df in labels.values())
