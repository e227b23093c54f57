"""Audio stage (avemo.audio): decoding, features, aligned windows, SSL, stage output, reader."""

from __future__ import annotations

import json
import pickle
import urllib.error
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import torchaudio

from avemo.audio.aligned import LOGMEL_FLOOR, aligned_windows, logmel_sequence, window_frames
from avemo.audio.decode import AudioDecodeError, load_audio
from avemo.audio.egemaps import egemaps_names, egemaps_vector
from avemo.audio.extract import extract_audio
from avemo.audio.features import (
    UTTERANCE_FEATURE_NAMES,
    feature_index,
    utterance_and_logmel,
    utterance_vector,
)
from avemo.audio.mono import decode_mono
from avemo.audio.ssl import load_ssl_model, ssl_embedding
from avemo.audio.store import AudioStore
from avemo.errors import ClipError, DataStageError
from avemo.manifest import MANIFEST_COLUMNS

LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "5.1": 6}


def tone(seconds: float, rate: int, freq: float, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(
        np.float32
    )


def make_clip(
    path: Path,
    wave: np.ndarray | None,
    rate: int = 48000,
    layout: str = "stereo",
    gains: tuple[float, ...] | None = None,
    seconds: float = 2.0,
) -> Path:
    """A 32x32 mpeg4 clip with an AAC track carrying ``wave`` on every channel (x gains)."""
    nch = LAYOUT_CHANNELS[layout]
    gains = gains or (1.0,) * nch
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=5)
        aus = out.add_stream("aac", rate=rate, layout=layout) if wave is not None else None
        vs.width = vs.height = 32
        vs.pix_fmt = "yuv420p"
        for _ in range(round(seconds * 5)):
            img = np.full((32, 32, 3), 90, np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode())
        if aus is not None:
            planes = np.stack([g * wave for g in gains]).astype(np.float32)
            for start in range(0, planes.shape[1], 1024):
                chunk = np.ascontiguousarray(planes[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(aus.encode(frame))
            out.mux(aus.encode())
    return path


def burst(seconds: float, rate: int, at: float, freq: float = 1000.0) -> np.ndarray:
    """Silence with a 0.2 s tone burst centred on ``at`` seconds."""
    x = np.zeros(round(seconds * rate), np.float32)
    a, b = round((at - 0.1) * rate), round((at + 0.1) * rate)
    x[a:b] = tone((b - a) / rate, rate, freq)
    return x


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio_clips")
    garbage = d / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 8)
    return {
        "s200": make_clip(d / "s200.mp4", tone(2.0, 48000, 200.0)),
        # 5.1 with the tone on the front-left channel only: averaging gives amp 0.6 / 6.
        "c400": make_clip(
            d / "c400.mp4",
            tone(3.0, 48000, 400.0),
            layout="5.1",
            gains=(2.0, 0, 0, 0, 0, 0),
            seconds=3.0,
        ),
        "burst": make_clip(d / "burst.mp4", burst(2.0, 48000, 1.0)),
        "noaudio": make_clip(d / "noaudio.mp4", None),
        "silent": make_clip(d / "silent.mp4", np.zeros(96000, np.float32)),
        "garbage": garbage,
    }


# --- decode ---------------------------------------------------------------------------------


def test_load_audio_downmixes_and_resamples(clips: dict[str, Path]) -> None:
    wave, rate = load_audio(clips["s200"], 16000)
    assert rate == 16000 and wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(wave.numel() / rate - 2.0) < 0.05
    wave, rate = load_audio(clips["c400"], 8000)
    assert rate == 8000 and abs(wave.numel() / rate - 3.0) < 0.05
    # Average of 6 channels, one carrying a 0.6-amplitude tone: 0.1 (a matrix downmix differs).
    mid = wave[4000:-4000].numpy()
    assert np.sqrt(2) * mid.std() == pytest.approx(0.1, rel=0.1)
    spectrum = np.abs(np.fft.rfft(mid))
    assert np.fft.rfftfreq(len(mid), 1 / rate)[spectrum.argmax()] == pytest.approx(400, abs=2)


def test_load_audio_errors(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ClipError) as info:
        load_audio(clips["noaudio"])
    assert info.value.reason == "no_audio"  # type: ignore[attr-defined]
    for path in (clips["garbage"], tmp_path / "absent.mp4"):
        with pytest.raises(AudioDecodeError) as info:
            load_audio(path)
        assert info.value.reason == "unreadable"
        assert str(path) in str(info.value)


# --- 192-D vector, eGeMAPS ------------------------------------------------------------------


def test_utterance_vector_tracks_pitch(clips: dict[str, Path]) -> None:
    assert len(UTTERANCE_FEATURE_NAMES) == 192
    v200 = utterance_vector(*load_audio(clips["s200"]))
    v400 = utterance_vector(*load_audio(clips["c400"]))
    for v in (v200, v400):
        assert v.shape == (192,) and v.dtype == np.float32 and np.isfinite(v).all()
    f0 = feature_index("f0_hz_mean")
    assert v200[f0] == pytest.approx(200, rel=0.03)
    assert v400[f0] == pytest.approx(400, rel=0.03)
    assert v400[feature_index("voicing_mean")] > 0.8
    # The 5.1 clip is ~10 dB quieter (averaging); MFCC means differ too.
    assert v200[feature_index("log_energy_mean")] > v400[feature_index("log_energy_mean")] + 5
    assert np.abs(v200[:40] - v400[:40]).max() > 1.0


@pytest.mark.parametrize("n", [0, 1, 50, 16000])
def test_utterance_vector_silence_and_short_input_is_finite(n: int) -> None:
    for wave in (torch.zeros(n), 0.01 * torch.randn(n)):
        v = utterance_vector(wave, 16000)
        assert v.shape == (192,) and np.isfinite(v).all()
    assert utterance_vector(torch.zeros(n), 16000)[feature_index("f0_hz_mean")] == 0.0


def test_egemaps_vector(clips: dict[str, Path]) -> None:
    wave, rate = load_audio(clips["s200"])
    v = egemaps_vector(wave, rate)
    assert v.shape == (88,) and v.dtype == np.float32 and np.isfinite(v).all()
    assert len(egemaps_names()) == 88 and np.abs(v).sum() > 0
    short = egemaps_vector(wave[:100], rate)  # openSMILE alone would give all-NaN here
    assert np.isfinite(short).all()
    assert not np.allclose(v, egemaps_vector(*load_audio(clips["c400"])))


def test_deltas_match_torchaudio() -> None:
    from avemo.audio.features import _deltas

    x = torch.randn(40, 37)
    for t in (x, x[:, :1], x[:, :3]):
        ref = torchaudio.functional.compute_deltas(t[None], win_length=5)[0]
        torch.testing.assert_close(_deltas(t), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [0, 399, 400, 401, 1234, 16000, 48005])
def test_one_stft_gives_the_separate_functions_results(clips: dict[str, Path], n: int) -> None:
    """The stage's shared-STFT path = utterance_vector + logmel_sequence (reflect-padded ends)."""
    waves = [0.1 * torch.randn(n, generator=torch.Generator().manual_seed(n))]
    if n == 16000:
        waves += [load_audio(clips[k])[0] for k in ("s200", "c400", "burst")]
    for wave in waves:
        for n_mels, hop_s in ((64, 0.01), (40, 0.01), (64, 0.02)):  # shared, then fallbacks
            vec, seq = utterance_and_logmel(wave, 16000, n_mels, hop_s)
            np.testing.assert_array_equal(vec, utterance_vector(wave, 16000))
            ref = logmel_sequence(wave, 16000, n_mels=n_mels, hop_s=hop_s)
            assert seq.shape == ref.shape and seq.dtype == np.float32
            np.testing.assert_allclose(seq, ref, atol=1e-3)


# --- aligned windows ------------------------------------------------------------------------


def test_aligned_windows_are_centred(clips: dict[str, Path]) -> None:
    wave, rate = load_audio(clips["burst"])
    seq = logmel_sequence(wave, rate, n_mels=64, hop_s=0.01)
    assert seq.shape == (wave.numel() // 160 + 1, 64) and seq.dtype == np.float32
    w = window_frames(0.2, 0.01)
    assert w == 21
    win = aligned_windows(wave, rate, [1.0, 0.2, 0.0, 5.0], window_s=0.2, n_mels=64, hop_s=0.01)
    assert win.shape == (4, 64, w) and win.dtype == np.float32
    energy = win.max(axis=1)  # loudest band per time step
    # The burst (0.9-1.1 s) fills the window at 1.0 s and is absent from the one at 0.2 s.
    assert energy[0].min() > energy[1].max() + 5
    # Window at 1.0 s is the slice of the sequence around frame 100, exactly.
    np.testing.assert_array_equal(win[0], seq[90:111].T)
    # Clip edges: outside the clip is silence, the log-mel floor (log of zero power, about
    # -13.8), not 0 (log power 0 would be loud sound): the first half of the window at t=0,
    # and all of the one at t=5 s.
    floor = float(np.log(np.float32(1e-6)))
    assert LOGMEL_FLOOR == pytest.approx(floor) and -14.0 < floor < -13.7
    assert (win[2][:, :10] == np.float32(floor)).all()
    np.testing.assert_array_equal(win[2][:, 10:], seq[:11].T)  # the clip itself, unchanged
    assert (win[3] == np.float32(floor)).all()
    # Silence inside the clip reads the same as the padding (up to the mel filters' rounding).
    silent = aligned_windows(torch.zeros(rate), rate, [0.0], window_s=0.2, n_mels=64, hop_s=0.01)
    np.testing.assert_allclose(silent[0][:, 10:], floor, atol=1e-3)


# --- SSL ------------------------------------------------------------------------------------


def test_ssl_embedding_random_init() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine, more threads only slow this down
    try:
        torch.manual_seed(0)
        model = load_ssl_model("WAV2VEC2_BASE", pretrained=False)
        emb = ssl_embedding(model, torch.from_numpy(tone(0.25, 16000, 200.0)))
        short = ssl_embedding(model, torch.zeros(10))
    finally:
        torch.set_num_threads(threads)
    assert emb.shape == (768,) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert short.shape == (768,) and not np.allclose(emb, short)


def test_ssl_offline_error_names_cache_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DataStageError) as info:
        load_ssl_model("HUBERT_BASE")
    msg = str(info.value)
    assert str(hub / "checkpoints" / "hubert_fairseq_base_ls960.pth") in msg
    assert "https://download.pytorch.org/torchaudio/models/hubert_fairseq_base_ls960.pth" in msg
    with pytest.raises(DataStageError, match="unknown SSL model"):
        load_ssl_model("NOPE")


# --- the stage ------------------------------------------------------------------------------

MANIFEST_ROWS = [  # (key, ok, has_audio)
    ("s200", True, True),
    ("excluded", False, True),
    ("noaudio", True, False),
    ("burst", True, True),
    ("silent", True, True),
    ("garbage", True, True),
    ("c400", True, True),
]
# Frame index in an order unlike the manifest's (as a frames stage may write it).
FRAME_TIMES = {"burst": [0.2, 1.0, 1.8], "c400": [0.0, 1.5], "noaudio": [0.5], "s200": [1.0]}


def write_inputs(root: Path, clips: dict[str, Path]) -> tuple[Path, Path]:
    rows = []
    for i, (key, ok, has_audio) in enumerate(MANIFEST_ROWS):
        row: dict[str, object] = {c: 0 for c in MANIFEST_COLUMNS}
        row.update(
            split="dev",
            clip_name=f"dia{i}_utt0",
            dialogue_id=i,
            speaker="A",
            utterance="",
            emotion="neutral",
            sentiment="neutral",
            start_s=0.0,
            end_s=2.0,
            clip_path=str(clips.get(key, root / "missing.mp4")),
            exists=True,
            size_bytes=1,
            duration_s=2.0,
            has_video=True,
            has_audio=has_audio,
            fps=5.0,
            ok=ok,
            qc_reason="" if ok else "too_long",
        )
        rows.append(row)
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_parquet(manifest, index=False)
    names = {key: f"dia{i}_utt0" for i, (key, _, _) in enumerate(MANIFEST_ROWS)}
    index = [
        {"clip_name": names[k], "shard": 0, "row": r, "t_s": t, "frame_number": r, "face": False}
        for k, ts in FRAME_TIMES.items()
        for r, t in enumerate(ts)
    ]
    frames = root / "frames"
    frames.mkdir()
    pd.DataFrame(index).to_parquet(frames / "index.parquet", index=False)
    return manifest, frames


@pytest.fixture(scope="module")
def stage(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("audio_stage")
    manifest, frames = write_inputs(root, clips)
    out = root / "audio" / "dev"
    summary = extract_audio(manifest, frames, out, window_s=0.2, egemaps=True)
    return {"root": root, "manifest": manifest, "frames": frames, "out": out, "summary": summary}


def test_stage_rows_masks_and_features(stage: dict[str, object], clips: dict[str, Path]) -> None:
    s = AudioStore(stage["out"])  # type: ignore[arg-type]
    keys = [k for k, ok, _ in MANIFEST_ROWS if ok]
    assert list(s.clips["clip_name"]) == [
        f"dia{i}_utt0" for i, (_, ok, _) in enumerate(MANIFEST_ROWS) if ok
    ]
    by_key = dict(zip(keys, s.clips.to_dict("records"), strict=True))
    assert [by_key[k]["mask"] for k in keys] == [True, False, True, False, False, True]
    assert by_key["noaudio"]["reason"] == "no_audio" and not by_key["noaudio"]["has_audio"]
    assert by_key["silent"]["reason"] == "silent" and by_key["silent"]["silent"]
    assert by_key["silent"]["ok"] and by_key["silent"]["duration_s"] == pytest.approx(2, abs=0.05)
    assert by_key["garbage"]["reason"] == "unreadable" and not by_key["garbage"]["ok"]
    utt, ege = s.utterance(), s.egemaps()
    assert utt.shape == (6, 192) and ege.shape == (6, 88) and utt.dtype == np.float32
    mask = s.mask
    assert (utt[~mask] == 0).all() and (ege[~mask] == 0).all()
    assert np.isfinite(utt).all() and (np.abs(utt[mask]).sum(axis=1) > 0).all()
    # Same numbers as the functions called directly.
    row = s.row("dia0_utt0")
    np.testing.assert_allclose(utt[row], utterance_vector(*load_audio(clips["s200"])), rtol=1e-5)
    assert stage["summary"]["masked"] == 3  # type: ignore[index]
    assert stage["summary"]["reasons"] == {"no_audio": 1, "silent": 1, "unreadable": 1}  # type: ignore[index]
    with pytest.raises(DataStageError, match="SSL"):
        s.ssl()


def test_logmel_reads_leave_nothing_mapped(stage: dict[str, object]) -> None:
    """Log-mels are read with pread (avemo.npy_io), not through a memory map whose touched
    pages stay in the job's RSS; lengths are known without reading."""
    s = AudioStore(stage["out"])  # type: ignore[arg-type]
    whole = np.load(s.dir / "logmel.npy")
    index = pd.read_parquet(s.dir / "logmel_index.parquet")
    for name, start, length in index[["clip_name", "start", "length"]].itertuples(index=False):
        seq = s.logmel(name)
        assert s.logmel_length(name) == len(seq) == length and seq.dtype == np.float16
        np.testing.assert_array_equal(seq, whole[start : start + length])
    assert not [m for m in Path("/proc/self/maps").read_text().splitlines()
                if m.endswith("logmel.npy")]


def test_stage_aligned_rows_follow_frames_index(
    stage: dict[str, object], clips: dict[str, Path]
) -> None:
    s = AudioStore(stage["out"])  # type: ignore[arg-type]
    index = pd.read_parquet(stage["frames"] / "index.parquet")  # type: ignore[operator]
    ali = s.aligned()
    assert ali.shape == (len(index), 64, 21)
    pd.testing.assert_frame_equal(
        s.aligned_index, index[["clip_name", "t_s"]].astype({"t_s": np.float32})
    )
    # Rows 0-2 are the burst clip at 0.2, 1.0, 1.8 s: the burst shows only in the middle one.
    wave, rate = load_audio(clips["burst"])
    expected = aligned_windows(wave, rate, [0.2, 1.0, 1.8], window_s=0.2)
    np.testing.assert_allclose(ali[0:3], expected, rtol=1e-5, atol=1e-5)
    assert ali[1].max(axis=0).min() > ali[0].max() + 5
    assert (ali[5] == 0).all()  # the no-audio clip's frame
    # Log-mel sequences: full length for usable clips, empty for masked ones.
    lm = s.logmel("dia3_utt0")
    assert lm.dtype == np.float16 and lm.shape == (wave.numel() // 160 + 1, 64)
    np.testing.assert_allclose(lm, logmel_sequence(wave, rate).astype(np.float16))
    assert s.logmel("dia2_utt0").shape == (0, 64)
    meta = s.meta
    assert meta["params"]["window_frames"] == 21 and len(meta["utterance_features"]) == 192


def test_stage_ssl_missing_weights(
    stage: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(name: str, pretrained: bool = True) -> torch.nn.Module:
        raise DataStageError(f"cannot load the pretrained {name} weights: place them at /x")

    monkeypatch.setattr("avemo.audio.ssl.load_ssl_model", offline)
    args = (stage["manifest"], stage["frames"])
    with pytest.raises(DataStageError, match="place them"):
        extract_audio(*args, tmp_path / "a", ssl="on", egemaps=False)  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists()
    extract_audio(*args, tmp_path / "b", ssl="on", ssl_on_missing="skip", egemaps=False)  # type: ignore[arg-type]
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert not meta["ssl_written"] and "SSL embeddings skipped" in meta["notes"][0]
    assert not (tmp_path / "b" / "ssl.npy").exists()
    assert not (tmp_path / "b" / "egemaps.npy").exists()


def test_stage_orphan_frame_rows_get_zero_windows(stage: dict[str, object], tmp_path: Path) -> None:
    # Frames of a clip the manifest does not list as usable keep their index row, with zeros.
    index = pd.read_parquet(stage["frames"] / "index.parquet")  # type: ignore[operator]
    orphan = index.iloc[:1].assign(clip_name="dia99_utt0")
    frames = tmp_path / "frames"
    frames.mkdir()
    pd.concat([index, orphan]).to_parquet(frames / "index.parquet", index=False)
    manifest = stage["manifest"]
    summary = extract_audio(manifest, frames, tmp_path / "out", window_s=0.2, egemaps=False)  # type: ignore[arg-type]
    s = AudioStore(tmp_path / "out")
    assert summary["frames"] == len(index) + 1 and (s.aligned()[-1] == 0).all()
    assert s.meta["notes"] == [
        "1 frame rows belong to clips not usable in the manifest; their aligned windows are zeros"
    ]
    ref = AudioStore(stage["out"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(s.aligned()[:-1], ref.aligned())
    np.testing.assert_array_equal(s.logmel("dia3_utt0"), ref.logmel("dia3_utt0"))


def test_stage_missing_frames_index(stage: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(DataStageError, match="frames index not found"):
        extract_audio(stage["manifest"], tmp_path, tmp_path / "out")  # type: ignore[arg-type]
    with pytest.raises(DataStageError, match="not found"):
        AudioStore(tmp_path / "nothing")


@pytest.mark.slow
def test_stage_parallel_and_ssl_random(stage: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "par"
    args = (stage["manifest"], stage["frames"], out)
    extract_audio(*args, window_s=0.2, workers=2, ssl="random")  # type: ignore[arg-type]
    a, b = AudioStore(stage["out"]), AudioStore(out)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(a.clips, b.clips)
    np.testing.assert_allclose(a.utterance(), b.utterance(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(a.aligned(), b.aligned())
    assert b.ssl().shape == (6, 768) and (b.ssl()[~b.mask] == 0).all()
    assert np.isfinite(b.ssl()).all() and (np.abs(b.ssl()[b.mask]).sum(axis=1) > 0).all()


def test_stage_workers_match_one_process(stage: dict[str, object], tmp_path: Path) -> None:
    """eGeMAPS, or without it decoding, spread over 2 torch-free workers: the same arrays as
    in one process, masked clips included (an undecodable clip's error comes back from a
    decoding worker)."""
    from avemo.audio.extract import _worker_pool

    out = tmp_path / "w2"
    args = (stage["manifest"], stage["frames"], out)
    extract_audio(*args, window_s=0.2, egemaps=True, workers=2)  # type: ignore[arg-type]
    a, b = AudioStore(stage["out"]), AudioStore(out)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(a.clips, b.clips)
    assert set(b.clips["reason"]) >= {"unreadable", "no_audio", "silent"}
    np.testing.assert_array_equal(a.egemaps(), b.egemaps())
    np.testing.assert_array_equal(a.utterance(), b.utterance())
    np.testing.assert_array_equal(a.aligned(), b.aligned())
    for name in a.clips.loc[a.mask, "clip_name"]:
        np.testing.assert_array_equal(a.logmel(name), b.logmel(name))
    # Without eGeMAPS the workers still decode: the same arrays again.
    extract_audio(stage["manifest"], stage["frames"], tmp_path / "c",  # type: ignore[arg-type]
                  window_s=0.2, egemaps=False, workers=2)
    c = AudioStore(tmp_path / "c")
    pd.testing.assert_frame_equal(a.clips, c.clips)
    np.testing.assert_array_equal(a.utterance(), c.utterance())
    np.testing.assert_array_equal(a.aligned(), c.aligned())
    with _worker_pool(2) as pool:
        assert pool is not None
        pool.submit(egemaps_vector, np.zeros(1600, np.float32), 16000).result()
        pool.submit(decode_mono, str(stage["manifest"])).exception()  # imports the decoder
        # A worker holds openSMILE and PyAV but not torch (~130 MB instead of ~600 MB per
        # worker); builtins.eval, since a function from this module would import torch to
        # unpickle.
        probe = "[m in __import__('sys').modules for m in ('torch', 'opensmile', 'av')]"
        assert pool.submit(eval, probe).result() == [False, True, True]


def test_a_queued_decode_is_taken_back_a_finished_one_used(clips: dict[str, Path]) -> None:
    from concurrent.futures import Future

    from avemo.audio.extract import _decoded_here_or_there

    path = str(clips["s200"])
    queued: Future = Future()  # pending, as in the pool's queue before a worker takes it
    samples, rate = _decoded_here_or_there(path, queued)
    assert queued.cancelled() and rate == 48000
    np.testing.assert_array_equal(samples, decode_mono(path)[0])
    done: Future = Future()
    done.set_result((np.ones(3, np.float32), 8000))
    assert _decoded_here_or_there(path, done)[1] == 8000  # the worker's result, not a decode


def test_decode_error_keeps_its_reason_through_pickle(clips: dict[str, Path]) -> None:
    """A worker's AudioDecodeError reaches the stage with its QC reason."""
    with pytest.raises(AudioDecodeError) as info:
        decode_mono(clips["garbage"])
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is AudioDecodeError and back.reason == "unreadable"
    assert str(back) == str(info.value)


def test_row_file_writes_a_loadable_npy_row_by_row(tmp_path) -> None:
    from avemo.audio.extract import _RowFile

    f = _RowFile(tmp_path / "a.npy", (np.int64(6), 2, 3), np.float32)  # numpy ints in shape
    block = np.arange(18, dtype=np.float32).reshape(3, 2, 3)
    f[np.array([4, 1, 2])] = block  # two runs: [4] and [1, 2]
    f[0] = np.ones((2, 3))
    f.close()
    a = np.load(tmp_path / "a.npy")
    assert a.shape == (6, 2, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a[[4, 1, 2]], block)
    assert (a[0] == 1).all() and not a[[3, 5]].any()  # unwritten rows stay zero
    empty = _RowFile(tmp_path / "b.npy", (0, 64), np.float16)
    empty.close()
    assert np.load(tmp_path / "b.npy").shape == (0, 64)
