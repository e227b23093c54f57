"""Speech share and activity-speech co-variation (avemo.audio.speech_share): the pieces on
hand-made inputs, the stage with the packaged Silero VAD on generated `event` and `spread`
clips, judged against the corpus' truth file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avemo.audio import speech_share as ss
from avemo.errors import ConfigError
from avemo.manifest import build_manifests
from avemo.synthetic import TRUTH_CSV, generate_corpus
from avemo.video.extract import extract_frames


def _fake_vad(batch: torch.Tensor) -> torch.Tensor:
    """Probability = the frame's mean |sample| (so padding with zeros reads as silence)."""
    frames = batch.reshape(len(batch), -1, ss.VAD_HOP)
    return frames.abs().mean(-1)


def test_batches_give_each_wave_its_own_frames() -> None:
    rng = np.random.default_rng(0)
    waves = [rng.uniform(-1, 1, n).astype(np.float32) for n in (1000, 512, 0, 5000, 3)]
    probs = ss.speech_probs(waves, _fake_vad, batch_size=2)
    assert [len(p) for p in probs] == [2, 1, 0, 10, 1]
    for w, p in zip(waves, probs, strict=True):
        alone = ss.speech_probs([w], _fake_vad)[0]
        np.testing.assert_allclose(p, alone, rtol=1e-6)


def test_silero_in_a_batch_equals_silero_alone() -> None:
    vad = ss.load_vad()
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 20000, 3000)]
    together = ss.speech_probs(waves, vad, batch_size=3)
    for w, p in zip(waves, together, strict=True):
        np.testing.assert_allclose(p, ss.speech_probs([w], vad)[0], atol=1e-5)


def test_measures_of_one_clip() -> None:
    probs = np.array([0.1, 0.9, 0.9, 0.2, 0.8, 0.1], np.float32)  # 32-ms frames
    t = (np.arange(6) + 0.5) * ss.VAD_HOP_S
    moving = np.zeros((6, 4), np.float32)
    moving[[1, 2, 4], 3] = -0.5  # one cell moves (signed) exactly while speech sounds
    m = ss.clip_measures(probs, 0.5, t, moving)
    assert m["speech_share"] == pytest.approx(0.5)
    assert m["mean_prob"] == pytest.approx(probs.mean())
    assert m["activity_speech_r"] > 0.95
    still = ss.clip_measures(probs, 0.5, t, np.zeros((6, 4), np.float32))
    assert np.isnan(still["activity_speech_r"])  # nothing moves: undefined, not 0
    assert np.isnan(ss.clip_measures(probs, 0.5, t[:2], moving[:2])["activity_speech_r"])
    assert ss.prob_at(probs, np.array([0.0, 0.033, 99.0])).tolist() == pytest.approx(
        [0.1, 0.9, 0.1])
    assert np.isnan(ss.clip_measures(np.zeros(0, np.float32), 0.5, t, moving)["speech_share"])


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """``{cue: {truth, manifest, frames, speech}}`` for a small event and spread corpus."""
    out = {}
    for cue in ("event", "spread"):
        root = tmp_path_factory.mktemp(cue)
        corpus = root / "corpus"
        generate_corpus(corpus, 16, 1, 1, seed=5, cue=cue, inject_defects=False,
                        max_duration_s=5.0, width=48, height=48)
        build_manifests(corpus, root / "manifest")
        extract_frames(root / "manifest" / "train.parquet", root / "frames", policy="uniform_k",
                       uniform_k=8, size=32, activity_grid=8)
        summary = ss.measure_speech(root / "manifest" / "train.parquet", root / "frames",
                                    root / "speech" / "train.parquet", workers=2)
        assert summary["clips"] == summary["measured"] == 16
        out[cue] = {"truth": corpus / TRUTH_CSV, "corpus": corpus,
                    "speech": root / "speech" / "train.parquet"}
    return out


def _voiced(truth: pd.Series, t: np.ndarray) -> np.ndarray:
    """Where the truth file says a voice sounds (the target's event and the distractor's)."""
    if truth["cue"] == "spread":
        return np.ones(len(t), bool)
    on = (t >= truth["event_start_s"]) & (t <= truth["event_end_s"])
    return on | ((t >= truth["distractor_start_s"]) & (t <= truth["distractor_end_s"]))


def test_stage_table_on_generated_clips(worlds: dict[str, dict[str, Path]]) -> None:
    for cue, files in worlds.items():
        df = pd.read_parquet(files["speech"])
        assert list(df.columns) == list(ss.COLUMNS)
        assert (df["split"] == "train").all() and (df["reason"] == "").all()
        assert df["speech_share"].between(0, 1).all(), cue
        assert (df["n_frames"] == 8).all()
        truth = pd.read_csv(files["truth"]).query("split == 'train'")
        assert set(df["clip_name"]) == set(truth["clip_name"])
        assert df["audio_s"].to_numpy() == pytest.approx(
            truth.set_index("clip_name").loc[df["clip_name"], "duration_s"].to_numpy(), abs=0.05)


def test_silero_hears_when_the_synthetic_voices_sound(worlds: dict[str, dict[str, Path]]
                                                      ) -> None:
    """In `event` clips the VAD's probability is higher where the truth file puts a voice (the
    target's event or the distractor) than elsewhere: the VAD follows the synthetic voices in
    time. How much of a voiced stretch it calls speech is measured, not assumed (see
    docs/corpus.md, "Speech share")."""
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(worlds["event"]["truth"]).query("split == 'train'")
    vad = ss.load_vad()
    waves = [ss._decode(str(worlds["event"]["corpus"] / f)) for f in truth["file"]]
    probs = ss.speech_probs(waves, vad)
    on, p = [], []
    for (_, row), pr in zip(truth.iterrows(), probs, strict=True):
        t = (np.arange(len(pr)) + 0.5) * ss.VAD_HOP_S
        on.append(_voiced(row, t))
        p.append(pr)
    on_, p_ = np.concatenate(on), np.concatenate(p)
    assert roc_auc_score(on_, p_) > 0.7
    assert p_[on_].mean() > 2 * p_[~on_].mean()


def test_bad_settings_are_config_errors(worlds: dict[str, dict[str, Path]], tmp_path: Path
                                        ) -> None:
    with pytest.raises(ConfigError, match="speech.threshold"):
        ss.measure_speech("unused", "unused", tmp_path / "x.parquet", threshold=1.0)
    with pytest.raises(ConfigError, match="speech.batch_size"):
        ss.measure_speech("unused", "unused", tmp_path / "x.parquet", batch_size=0)


def test_frames_without_activity_leave_r_undefined(worlds: dict[str, dict[str, Path]],
                                                   tmp_path: Path) -> None:
    """frames.activity_grid 0 writes no activity: the share is measured, r is NaN."""
    root = worlds["event"]["speech"].parents[1]
    extract_frames(root / "manifest" / "train.parquet", tmp_path / "frames",
                   policy="uniform_k", uniform_k=8, size=32, activity_grid=0)
    ss.measure_speech(root / "manifest" / "train.parquet", tmp_path / "frames",
                      tmp_path / "speech.parquet")
    df, full = pd.read_parquet(tmp_path / "speech.parquet"), pd.read_parquet(
        worlds["event"]["speech"])
    assert df["activity_speech_r"].isna().all() and (df["n_frames"] == 8).all()
    pd.testing.assert_series_equal(df["speech_share"], full["speech_share"])
