"""Fusion: inputs and provenance, masking, gate, overfit, scaling, late fusion, stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import overfit_losses

from avemo import registry
from avemo.errors import ConfigError
from avemo.evaluation import read_predictions
from avemo.evaluation.metrics import prob_columns
from avemo.fusion import build_fusion_dataset, late_fusion
from avemo.fusion.inputs import FusionDataset
from avemo.fusion.late import choose_weight
from avemo.fusion.stage import build_fusion_model, train_fusion
from avemo.labels import EMOTIONS, SENTIMENTS, SPLITS
from avemo.manifest import MANIFEST_COLUMNS
from avemo.video.store import ShardWriter

DV, DA, N_MELS, W, T_MAX = 100, 192, 16, 21, 8
POOL = 3
TINY: dict[str, dict[str, Any]] = {
    "concat_misaligned": {"width": 32, "dropout": 0.0},
    "gated": {"d": 32, "width": 32, "dropout": 0.0},
    "concat_aligned": {"d": 32, "width": 32, "dropout": 0.0},
    "cross_attention": {"d": 32, "heads": 2, "width": 32, "dropout": 0.0},
}
ALIGNED = tuple(n for n in registry.names(["early_fusion"])
                if registry.get(n).fusion_inputs == "aligned")
NAMED = [n for n in registry.names(["early_fusion"]) if not registry.get(n).diagnostic]
# Each architecture's tiny params (a diagnosis variant takes its architecture's).
_ARCH = {("utterance", "concat"): "concat_misaligned", ("utterance", "gated"): "gated",
         ("aligned", "concat"): "concat_aligned", ("aligned", "cross_attention"): "cross_attention"}


def tiny_params(name: str) -> dict[str, Any]:
    e = registry.get(name)
    return TINY[_ARCH[(str(e.fusion_inputs), e.factors["architecture"])]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # These models are tiny; on a shared 2-core machine intra-op threads only contend (10x).
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# ---------------------------------------------------------------- synthetic stage files
def _manifest(path: Path, split: str, names: list[str], emo: np.ndarray, ok: np.ndarray) -> None:
    n = len(names)
    df = pd.DataFrame({c: [""] * n for c in MANIFEST_COLUMNS})
    df["split"], df["clip_name"], df["ok"] = split, names, ok
    df["emotion"] = [EMOTIONS[e] for e in emo]
    df["sentiment"] = [SENTIMENTS[e % 3] for e in emo]
    for c in (
        "dialogue_id",
        "utterance_id",
        "season",
        "episode",
        "size_bytes",
        "width",
        "height",
        "audio_rate",
        "audio_channels",
    ):
        df[c] = 0
    for c in ("start_s", "end_s", "duration_s", "fps"):
        df[c] = 1.0
    for c in ("exists", "has_video", "has_audio"):
        df[c] = True
    df.to_parquet(path, index=False)


def _npz(path: Path, names: list[str], seqs: list[np.ndarray], times: list[np.ndarray]) -> None:
    lengths = np.array([len(s) for s in seqs])
    t = int(lengths.max())
    seq = np.zeros((len(seqs), t, DV), np.float32)
    t_s = np.full((len(seqs), t), np.nan, np.float32)
    for i, (s, tt) in enumerate(zip(seqs, times, strict=True)):
        seq[i, : len(s)], t_s[i, : len(tt)] = s, tt
    emb = np.stack([s.mean(0) for s in seqs]).astype(np.float32)
    np.savez(path, clip_name=np.array(names), emb=emb, seq=seq, lengths=lengths, t_s=t_s)


def _audio_dir(
    d: Path,
    names: list[str],
    utt: np.ndarray,
    mask: np.ndarray,
    win: np.ndarray,
    win_index: pd.DataFrame,
) -> None:
    d.mkdir(parents=True)
    n = len(names)
    pd.DataFrame(
        {
            "clip_name": names,
            "ok": True,
            "reason": "",
            "has_audio": mask,
            "silent": False,
            "duration_s": 1.0,
            "mask": mask,
        }
    ).to_parquet(d / "clips.parquet", index=False)
    np.save(d / "utterance.npy", np.where(mask[:, None], utt, 0.0).astype(np.float32))
    np.save(d / "aligned.npy", win.astype(np.float32))
    win_index.to_parquet(d / "aligned_index.parquet", index=False)
    np.save(d / "logmel.npy", np.zeros((0, N_MELS), np.float16))
    pd.DataFrame(
        {"clip_name": names, "start": np.zeros(n, int), "length": np.zeros(n, int)}
    ).to_parquet(d / "logmel_index.parquet", index=False)
    (d / "meta.json").write_text("{}")


ACT_GRID = 2


def _frames_dir(d: Path, names: list[str], times: list[np.ndarray],
                rng: np.random.Generator) -> None:
    """A dense frames output (tiny random frames) whose frame activity fusion can read."""
    writer = ShardWriter(d, shard_clips=16, activity_grid=ACT_GRID)
    for name, t in zip(names, times, strict=True):
        writer.add(name, rng.integers(0, 255, (len(t), 8, 8, 3), dtype=np.uint8), t)
    writer.close()
    pd.DataFrame({"clip_name": names, "n_frames": [len(t) for t in times], "ok": True,
                  "reason": "", "face_ratio": np.nan, "decoded_duration_s": 1.0}
                 ).to_parquet(d / "clips.parquet", index=False)
    (d / "meta.json").write_text("{}")


def make_split(
    root: Path, split: str, n: int = 40, seed: int = 0, shift: float = 0.0, signal: float = 3.0
) -> dict[str, Path]:
    """One split's files. The label lives only at one random dense step, in the frame's
    embedding and in the audio window at that same timestamp; sparse frames and whole-clip
    audio carry none of it. ``shift`` offsets every feature (scaling tests)."""
    rng = np.random.default_rng(seed)
    proto_v = np.random.default_rng(99).normal(size=(7, DV)).astype(np.float32)
    proto_a = np.random.default_rng(98).normal(size=(7, N_MELS, W)).astype(np.float32)
    names = [f"dia{seed}_utt{i}" for i in range(n)]
    emo = rng.integers(0, 4, n)
    ok = np.ones(n, bool)
    ok[-1] = False  # a QC-excluded clip: must never appear
    d = root / split
    d.mkdir(parents=True)
    _manifest(d / "manifest.parquet", split, names, emo, ok)
    dur = rng.uniform(2.0, 12.0, n)
    sp_seqs, sp_t, de_seqs, de_t, wins, idx = [], [], [], [], [], []
    for i in range(n):
        ts = np.arange(0.0, dur[i], 3.0)
        sp_t.append(ts)
        sp_seqs.append(rng.normal(size=(len(ts), DV)).astype(np.float32) + shift)
        k_len = int(rng.integers(3, T_MAX + 1))
        td = (np.arange(k_len) + 0.5) * dur[i] / k_len
        seq = rng.normal(size=(k_len, DV)).astype(np.float32) + shift
        win = rng.normal(size=(k_len, N_MELS, W)).astype(np.float32) + shift
        k = int(rng.integers(0, k_len))
        seq[k] += signal * proto_v[emo[i]]
        win[k] += signal * proto_a[emo[i]]
        de_seqs.append(seq)
        de_t.append(td)
        wins.append(win)
        idx += [(names[i], float(t)) for t in td]
    keep = names[:-1]  # the not-ok clip has no frames, hence no embeddings
    _npz(d / "emb_sparse.npz", keep, sp_seqs[:-1], sp_t[:-1])
    _npz(d / "emb_dense.npz", keep, de_seqs[:-1], de_t[:-1])
    _frames_dir(d / "frames_dense", keep, de_t[:-1], rng)
    mask = np.ones(n, bool)
    mask[[1, 5, 9]] = False  # clips without usable audio
    utt = rng.normal(size=(n, DA)).astype(np.float32) + shift
    sparse_idx = pd.DataFrame(
        [(nm, float(t)) for nm, ts in zip(names, sp_t, strict=True) for t in ts],
        columns=["clip_name", "t_s"],
    )
    _audio_dir(
        d / "audio", names, utt, mask, rng.normal(size=(len(sparse_idx), N_MELS, W)), sparse_idx
    )
    all_win = np.concatenate(wins)
    index = pd.DataFrame(idx, columns=["clip_name", "t_s"])
    all_win[np.repeat(~mask, [len(w) for w in wins])] = 0.0  # no audio: zero windows
    drop = 2  # clip 2 lost the window of its first dense frame
    first = int(np.flatnonzero(index["clip_name"] == names[drop])[0])
    (d / "aligned").mkdir()
    np.save(d / "aligned" / "aligned.npy", np.delete(all_win, first, axis=0))
    index.drop(index.index[first]).to_parquet(d / "aligned" / "aligned_index.parquet")
    return {"root": d, "names": names, "sp_t": sp_t, "de_t": de_t, "mask": mask}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("fusion")
    return {s: make_split(root, s, seed=i, shift=5.0 * i) for i, s in enumerate(SPLITS)}


def ds_of(f: dict[str, Any], split: str, inputs: str) -> FusionDataset:
    d = f["root"]
    return build_fusion_dataset(
        split,
        inputs,
        d / "manifest.parquet",
        d / "emb_sparse.npz",
        d / "audio",
        video_dense=d / "emb_dense.npz",
        aligned_dir=d / "aligned",
        window_pool=POOL,
    )


def model_for(name: str, ds: FusionDataset | None = None) -> torch.nn.Module:
    dims = {"video_dim": DV}
    dims.update({"window_dim": N_MELS * POOL} if name in ALIGNED else {"audio_dim": DA})
    scaling = registry.get(name).factors["scaling"] == "on"
    return build_fusion_model(name, **(ds.dims() if ds else dims), **tiny_params(name),
                              scaling=scaling)


def inputs_for(name: str) -> str:
    return "aligned" if name in ALIGNED else "utterance"


def ds_for(f: dict[str, Any], split: str, name: str, seed: int = 0) -> FusionDataset:
    """The dataset a registered model reads (its factor levels)."""
    fac = registry.get(name).factors
    d = f["root"]
    return build_fusion_dataset(
        split, inputs_for(name), d / "manifest.parquet", d / "emb_sparse.npz", d / "audio",
        video_dense=d / "emb_dense.npz", aligned_dir=d / "aligned", window_pool=POOL,
        video=fac["video"], audio=fac["audio"],
        shuffle_seed=seed if fac["alignment"] == "shuffled" else None,
        activity_dir=d / "frames_dense" if fac["activity"] == "on" else None)


# ---------------------------------------------------------------- inputs
def test_misaligned_uses_sparse_frames_and_whole_clip_audio(files: dict[str, Any]) -> None:
    f = files["train"]
    ds = ds_of(f, "train", "utterance")
    assert len(ds) == 39 and f["names"][-1] not in ds.clip_names  # QC-excluded clip dropped
    assert ds.audio_t_s is None  # one whole-clip audio vector, no windows
    for i in range(len(ds)):
        ts = ds.video_t_s[i][~np.isnan(ds.video_t_s[i])]
        np.testing.assert_allclose(ts, f["sp_t"][i])  # the sparse (every 3 s) timestamps
        assert not np.allclose(ts[: len(f["de_t"][i])], f["de_t"][i][: len(ts)])
    batch = ds.collate(list(range(4)))
    assert set(batch) >= {"video_utt", "audio_utt"} and "video_seq" not in batch
    assert batch["video_utt"].shape == (4, DV) and batch["audio_utt"].shape == (4, DA)
    # The model's output depends on the sparse embedding and on nothing dense.
    model = model_for("concat_misaligned").eval()
    with torch.no_grad():
        base = model(batch)["emotion"]
        moved = model({**batch, "video_utt": batch["video_utt"] + 1.0})["emotion"]
    assert not torch.allclose(base, moved)


def test_aligned_pairs_frames_and_windows_by_timestamp(files: dict[str, Any]) -> None:
    f = files["train"]
    ds = ds_of(f, "train", "aligned")
    assert ds.dims() == {"video_dim": DV, "window_dim": N_MELS * POOL, "activity_dim": 0}
    for i in range(len(ds)):
        de = f["de_t"][i]
        np.testing.assert_allclose(ds.video_t_s[i, : len(de)], de, rtol=1e-6)
        am = ds.a["audio_mask"][i]
        if not f["mask"][i]:
            assert not am.any()  # no usable audio: every window masked
        elif i == 2:
            assert not am[0] and am[1 : len(de)].all()  # the dropped window only
        else:
            assert am[: len(de)].all() and not am[len(de) :].any()
        np.testing.assert_allclose(ds.audio_t_s[i][am], ds.video_t_s[i][am], rtol=1e-6)
    b = ds.collate([0, 1, 2])
    t = int(b["lengths"].max())
    assert b["video_seq"].shape == (3, t, DV) and b["audio_win"].shape == (3, t, N_MELS * POOL)
    assert torch.equal(b["mask"], b["video_mask"] | b["audio_mask"])


def test_feature_stats_use_valid_rows_only(files: dict[str, Any]) -> None:
    ds = ds_of(files["train"], "train", "utterance")
    mean, _ = ds.feature_stats()[0]["audio"]
    valid = ds.a["audio_utt"][ds.audio_present]
    np.testing.assert_allclose(mean, valid.mean(0, dtype=np.float64), atol=1e-6)
    assert not np.allclose(mean, ds.a["audio_utt"].mean(0))  # zeros of masked rows left out


# ---------------------------------------------------------------- models
def _random_aligned_batch(lengths: list[int], seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    n, t = len(lengths), max(lengths)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    am = mask.clone()
    am[0, 1] = False  # a frame without its window
    t_s = torch.where(mask, torch.arange(t).float() * 0.7, torch.tensor(float("nan")))
    return {
        "video_seq": torch.randn(n, t, DV, generator=g) * mask[..., None],
        "audio_win": torch.randn(n, t, N_MELS * POOL, generator=g) * am[..., None],
        "video_mask": mask,
        "audio_mask": am,
        "mask": mask,
        "t_s": t_s,
        "lengths": torch.tensor(lengths),
        "video_present": torch.ones(n, dtype=torch.bool),
        "audio_present": torch.ones(n, dtype=torch.bool),
        "emotion": torch.arange(n) % 7,
        "sentiment": torch.arange(n) % 3,
        "clip_name": [f"c{i}" for i in range(n)],
    }


@pytest.mark.parametrize("name", ALIGNED)
def test_padded_equals_unpadded(name: str) -> None:
    torch.manual_seed(0)
    model = model_for(name).eval()
    lengths = [5, 2, 4, 1]
    batch = _random_aligned_batch(lengths)
    seq_keys = ("video_seq", "audio_win", "video_mask", "audio_mask", "mask", "t_s")
    with torch.no_grad():
        padded = model(batch)
        for i, n in enumerate(lengths):
            alone = model(
                {
                    **{k: batch[k][i : i + 1, :n] for k in seq_keys},
                    **{
                        k: batch[k][i : i + 1]
                        for k in ("lengths", "video_present", "audio_present")
                    },
                }
            )
            for key in ("emotion", "sentiment", "embedding"):
                torch.testing.assert_close(padded[key][i], alone[key][0], atol=1e-5, rtol=1e-4)


def test_gate_goes_to_video_when_audio_missing(files: dict[str, Any]) -> None:
    ds = ds_of(files["dev"], "dev", "utterance")
    model = model_for("gated").eval()
    batch = ds.collate(list(range(12)))
    no_audio = ~batch["audio_present"]
    assert no_audio.sum() == 3
    with torch.no_grad():
        out = model(batch)
        noisy = model({**batch, "audio_utt": batch["audio_utt"] + 100.0})
        no_video = model({**batch, "video_present": torch.zeros(12, dtype=torch.bool)})
    assert torch.all(out["gate"][no_audio] == 1.0)
    assert torch.all((out["gate"][~no_audio] > 0) & (out["gate"][~no_audio] < 1))
    # Audio values of audio-less clips cannot move their prediction.
    torch.testing.assert_close(noisy["emotion"][no_audio], out["emotion"][no_audio])
    assert torch.all(no_video["gate"][~no_audio] == 0.0)


@pytest.mark.parametrize("name", registry.names(["early_fusion"]))
def test_missing_modality_is_scored(name: str, files: dict[str, Any]) -> None:
    ds = ds_for(files["test"], "test", name)
    model = model_for(name, ds).eval()
    for variant in (ds, ds.without("audio"), ds.without("video")):
        with torch.no_grad():
            out = model(variant.collate(list(range(len(variant)))))
        assert out["emotion"].shape == (len(ds), 7)
        assert torch.isfinite(out["emotion"]).all() and torch.isfinite(out["sentiment"]).all()
    full = model(ds.collate([0, 2, 3]))["emotion"]
    assert not torch.allclose(full, model(ds.without("audio").collate([0, 2, 3]))["emotion"])


@pytest.mark.parametrize("name", registry.names(["early_fusion"]))
def test_one_batch_overfit(name: str, files: dict[str, Any]) -> None:
    torch.manual_seed(0)
    ds = ds_for(files["train"], "train", name)
    model = model_for(name, ds).train()
    model.set_input_stats(*ds.feature_stats())
    batch = ds.collate(list(range(16)))
    losses = overfit_losses(model, batch, lr=3e-3)
    assert losses[-1] < 0.3 * losses[0], losses[::5]


# ---------------------------------------------------------------- late fusion
def _preds(path: Path, names: list[str], emo: np.ndarray, p_emo: np.ndarray) -> Path:
    df = pd.DataFrame(
        {
            "clip_name": names,
            "emotion": [EMOTIONS[e] for e in emo],
            "sentiment": [SENTIMENTS[e % 3] for e in emo],
        }
    )
    for j, col in enumerate(prob_columns("emotion")):
        df[col] = p_emo[:, j]
    p_sent = np.full((len(names), 3), 1 / 3)
    for j, col in enumerate(prob_columns("sentiment")):
        df[col] = p_sent[:, j]
    df.to_parquet(path, index=False)
    return path


def _probs(emo: np.ndarray, right: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that are correct for a fraction ``right`` of items, random otherwise."""
    guess = np.where(rng.random(len(emo)) < right, emo, rng.integers(0, 7, len(emo)))
    p = np.full((len(emo), 7), 0.05)
    p[np.arange(len(emo)), guess] = 0.7
    return p / p.sum(1, keepdims=True)


def _late_files(root: Path, test_good: str) -> tuple[dict[str, Path], dict[str, Path]]:
    rng = np.random.default_rng(0)
    vis, aud = {}, {}
    for split, n in (("dev", 60), ("test", 50)):
        names = [f"dia{i // 3}_utt{i % 3}" for i in range(n)]  # 3 utterances per dialogue
        emo = rng.integers(0, 7, n)
        good_v = split == "dev" or test_good == "visual"
        vis[split] = _preds(
            root / f"v_{split}.parquet", names, emo, _probs(emo, 0.9 if good_v else 0.1, rng)
        )
        aud[split] = _preds(
            root / f"a_{split}.parquet",
            names[::-1],
            emo[::-1],
            _probs(emo[::-1], 0.1 if good_v else 0.9, rng),
        )
    return vis, aud


def test_late_weight_chosen_on_dev_only(tmp_path: Path) -> None:
    vis, aud = _late_files(tmp_path, test_good="visual")
    s1 = late_fusion(vis, aud, tmp_path / "a", method="weighted")
    assert s1["emotion_visual_weight"] > 0.5  # the visual stream is the good one on dev
    # Flip which stream is good on test: the choice must not move.
    (tmp_path / "flipped").mkdir()
    vis2, aud2 = _late_files(tmp_path / "flipped", test_good="audio")
    s2 = late_fusion(vis2, aud2, tmp_path / "b", method="weighted")
    assert s2["emotion_visual_weight"] == s1["emotion_visual_weight"]
    test = read_predictions(tmp_path / "a" / "predictions_test.parquet")
    v = read_predictions(vis["test"]).set_index("clip_name").loc[test["clip_name"]]
    a = read_predictions(aud["test"]).set_index("clip_name").loc[test["clip_name"]]
    w = s1["emotion_visual_weight"]
    cols = prob_columns("emotion")
    np.testing.assert_allclose(
        test[cols].to_numpy(), w * v[cols].to_numpy() + (1 - w) * a[cols].to_numpy(), atol=1e-6
    )
    y = np.array([0, 1, 1])
    w0, _ = choose_weight(y, np.eye(3)[[0, 1, 1]], np.eye(3)[[1, 0, 0]])
    assert w0 > 0.5
    # Dev is out of fold: each dialogue's mix uses a weight chosen on the other folds.
    assert s1["dev_predictions"].startswith("out of fold") and s1["folds"] == 3
    dev = read_predictions(tmp_path / "a" / "predictions_dev.parquet").set_index("clip_name")
    vd = read_predictions(vis["dev"]).set_index("clip_name").loc[dev.index]
    ad = read_predictions(aud["dev"]).set_index("clip_name").loc[dev.index]
    fold_w = s1["emotion_fold_visual_weights"]
    assert len(fold_w) == 3
    for name in dev.index:
        mixes = [w * vd.loc[name, cols].to_numpy() + (1 - w) * ad.loc[name, cols].to_numpy()
                 for w in fold_w]
        assert any(np.allclose(dev.loc[name, cols].to_numpy(np.float64), m, atol=1e-6)
                   for m in mixes)


def test_late_stacking_dev_is_out_of_fold(tmp_path: Path) -> None:
    vis, aud = _late_files(tmp_path, test_good="visual")
    s = late_fusion(vis, aud, tmp_path / "s", method="stacking", seed=3)
    assert s["dev_predictions"].startswith("out of fold") and s["folds"] == 3
    dev = read_predictions(tmp_path / "s" / "predictions_dev.parquet")
    test = read_predictions(tmp_path / "s" / "predictions_test.parquet")
    assert len(dev) == 60 and len(test) == 50
    acc = (
        dev[prob_columns("emotion")].to_numpy().argmax(1)
        == dev["emotion"].map({e: i for i, e in enumerate(EMOTIONS)}).to_numpy()
    ).mean()
    assert acc > 0.6  # learned to trust the visual stream, out of fold
    # Test labels are never read for fitting: relabelling test leaves its probabilities.
    t = pd.read_parquet(vis["test"])
    t["emotion"] = EMOTIONS[0]
    t.to_parquet(vis["test"])
    a = pd.read_parquet(aud["test"])
    a["emotion"] = EMOTIONS[0]
    a.to_parquet(aud["test"])
    late_fusion(vis, aud, tmp_path / "s2", method="stacking", seed=3)
    test2 = read_predictions(tmp_path / "s2" / "predictions_test.parquet")
    np.testing.assert_allclose(test2[prob_columns("emotion")], test[prob_columns("emotion")])


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_late_with_one_dev_utterance_uses_the_plain_average_and_flags_it(
        tmp_path: Path, method: str) -> None:
    """A corpus of a few extracted clips: nothing can be fitted out of fold on one dev
    utterance, so both methods fall back to the documented default instead of stopping."""
    vis, aud = _late_files(tmp_path, test_good="visual")
    for files in (vis, aud):  # dev keeps one utterance
        dev = pd.read_parquet(files["dev"])
        dev[dev["clip_name"] == "dia0_utt0"].to_parquet(files["dev"], index=False)
    s = late_fusion(vis, aud, tmp_path / "o", method=method)
    assert s["n_dev"] == 1 and s["folds"] == 0 and s["dev_predictions"].startswith("plain")
    [flag] = s["flags"]
    assert flag["step"] == f"late fusion ({method})"
    assert "dev has 1 utterance(s)" in flag["reason"] and "plain average" in flag["reason"]
    assert json.loads((tmp_path / "o" / "late.json").read_text())["flags"] == [flag]
    cols = prob_columns("emotion")
    test = read_predictions(tmp_path / "o" / "predictions_test.parquet").set_index("clip_name")
    v = read_predictions(vis["test"]).set_index("clip_name").loc[test.index, cols].to_numpy()
    a = read_predictions(aud["test"]).set_index("clip_name").loc[test.index, cols].to_numpy()
    np.testing.assert_allclose(test[cols].to_numpy(), 0.5 * v + 0.5 * a, atol=1e-6)
    # Enough dev: fitted, no flag.
    (tmp_path / "full").mkdir()
    vis, aud = _late_files(tmp_path / "full", test_good="visual")
    assert late_fusion(vis, aud, tmp_path / "f", method=method)["flags"] == []


# ---------------------------------------------------------------- stage
ENGINE = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "patience": 0,
    "w_emotion": 1.0,
    "w_sentiment": 0.5,
    "imbalance": "class_weight",
    "focal_gamma": 2.0,
    "device": "cpu",
    "amp": False,
}


def _stage_paths(files: dict[str, Any]) -> dict[str, dict[str, Path]]:
    return {
        "manifests": {s: f["root"] / "manifest.parquet" for s, f in files.items()},
        "video_utt": {s: f["root"] / "emb_sparse.npz" for s, f in files.items()},
        "audio_dirs": {s: f["root"] / "audio" for s, f in files.items()},
        "video_dense": {s: f["root"] / "emb_dense.npz" for s, f in files.items()},
        "aligned_dirs": {s: f["root"] / "aligned" for s, f in files.items()},
        "frames_dense": {s: f["root"] / "frames_dense" for s, f in files.items()},
    }


@pytest.mark.parametrize("name", [*NAMED, "dxf_dense_windowed", "dx6_activity", "dx7_shuffled"])
def test_stage_end_to_end(name: str, files: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / name / "seed0"
    engine = {**ENGINE, "w_sentiment": 0.0} if name == "gated" else ENGINE  # single-task too
    summary = train_fusion(
        name,
        0,
        **_stage_paths(files),
        out_dir=out,
        engine=engine,
        model_params=tiny_params(name),
        config_hash="h",
        window_pool=POOL,
    )
    fac = summary["factors"]
    assert fac == dict(registry.get(name).factors)
    # The factor levels reach the inputs: windowed audio is the pooled windows (mean, max).
    if summary["inputs"] == "utterance":
        want = 2 * N_MELS * POOL if fac["audio"] == "windowed" else DA
        assert summary["dims"]["audio_dim"] == want, summary["dims"]
    # Frame activity joins the video input: per step, or pooled (mean, max) over the clip.
    grid = ACT_GRID * ACT_GRID * (2 if summary["inputs"] == "utterance" else 1)
    want_v = DV + (grid if fac["activity"] == "on" else 0)
    assert summary["dims"]["video_dim"] == want_v, summary["dims"]
    for f in ("best.pt", "last.pt", "live/metrics.json", "summary.json"):
        assert (out / f).is_file()
    test = read_predictions(out / "predictions_test.parquet")
    assert len(read_predictions(out / "predictions_dev.parquet")) == 39 and len(test) == 39
    no_audio_clips = {files["test"]["names"][i] for i in (1, 5, 9)}
    assert no_audio_clips <= set(test["clip_name"])  # scored, not dropped
    assert summary["n_test_missing_audio"] == 3
    for modality in ("audio", "video"):
        abl = read_predictions(out / f"predictions_test_no_{modality}.parquet")
        assert list(abl["clip_name"]) == list(test["clip_name"])
    abl = read_predictions(out / "predictions_test_no_audio.parquet").set_index("clip_name")
    cols = prob_columns("emotion")
    t = test.set_index("clip_name")
    # Clips without usable audio: the audio ablation changes nothing for them.
    np.testing.assert_allclose(
        abl.loc[sorted(no_audio_clips), cols], t.loc[sorted(no_audio_clips), cols], atol=1e-5
    )
    assert not np.allclose(abl[cols].to_numpy(), t.loc[abl.index, cols].to_numpy())
    # Scaling statistics in the checkpoint are the train split's, not dev's or test's; a model
    # with scaling off (the study's setup) keeps the identity.
    state = torch.load(out / "best.pt", weights_only=True)["model"]
    if registry.get(name).factors["scaling"] == "off":
        assert not state["norm_a.mean"].any() and (state["norm_a.std"] == 1).all()
    else:
        train_mean = ds_for(files["train"], "train", name).feature_stats()[0]["audio"][0]
        np.testing.assert_allclose(state["norm_a.mean"].numpy(), train_mean, rtol=1e-4,
                                   atol=1e-5)
        dev_mean = ds_for(files["dev"], "dev", name).feature_stats()[0]["audio"][0]
        assert np.abs(state["norm_a.mean"].numpy() - dev_mean).mean() > 1.0
    assert json.loads((out / "summary.json").read_text())["model"] == name


def test_stage_rejects_unknown_engine_setting(tmp_path: Path) -> None:
    # Named before any input is read; every other setting takes the schema default.
    with pytest.raises(ConfigError, match=r"concat_misaligned.*'lr_decay'"):
        train_fusion("concat_misaligned", 0, {}, {}, {}, tmp_path, engine={"lr_decay": 0.1},
                     model_params={}, config_hash="h")


def _speaker_batch(n: int, g: torch.Generator, moving_step_follows_voice: bool
                   ) -> dict[str, torch.Tensor]:
    """Clips of 6 steps: the label's voice sits in the window of one step, other emotions'
    voices in the rest; the frame activity marks the speaking step (or a random other one)."""
    t, dw, ga = 6, 8, 4
    y = torch.randint(0, len(EMOTIONS), (n,), generator=g)
    voices = torch.randint(0, len(EMOTIONS), (n, t), generator=g)
    speak = torch.randint(0, t, (n,), generator=g)
    voices[torch.arange(n), speak] = y
    win = torch.nn.functional.one_hot(voices, dw).float() + 0.3 * torch.randn(n, t, dw, generator=g)
    marked = speak if moving_step_follows_voice else (speak + 1 + torch.randint(
        0, t - 1, (n,), generator=g)) % t
    act = 0.3 * torch.randn(n, t, ga, generator=g)
    act[torch.arange(n), marked] += 2.0
    emb = torch.randn(n, t, 16, generator=g)
    ones = torch.ones(n, t, dtype=torch.bool)
    return {"video_seq": torch.cat([emb, act], -1), "audio_win": win, "video_mask": ones,
            "audio_mask": ones, "mask": ones, "emotion": y}


@pytest.mark.parametrize("follows", [True, False])
def test_aligned_concat_listens_where_the_frame_moves(follows: bool) -> None:
    """The aligned concatenation weights each window by its own frame's activity: when the
    moving frame marks the speaking step it finds the label's voice among distractors; when
    the mark is elsewhere (what time-shuffling does) it cannot."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = registry.get("concat_aligned").load()(
        video_dim=20, window_dim=8, activity_dim=4, d=16, width=32, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        b = _speaker_batch(64, g, follows)
        loss = torch.nn.functional.cross_entropy(net(b)["emotion"], b["emotion"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        b = _speaker_batch(512, g, follows)
        out = net(b)
        acc = float((out["emotion"].argmax(1) == b["emotion"]).float().mean())
    assert out["attention"].shape == (512, 6, 4)
    if follows:
        assert acc > 0.8, acc
    else:
        assert acc < 0.5, acc


@pytest.mark.slow
def test_alignment_matters(tmp_path: Path) -> None:
    """The label sits at one random dense step in both modalities: the aligned model finds it,
    the study's misaligned concatenation (sparse frames + whole-clip audio) cannot."""
    big = {
        s: make_split(tmp_path, s, n=n, seed=10 + i)
        for i, (s, n) in enumerate((("train", 200), ("dev", 80), ("test", 40)))
    }
    engine = {**ENGINE, "epochs": 12, "imbalance": "none"}
    score = {}
    for name in ("concat_misaligned", "concat_aligned", "cross_attention"):
        s = train_fusion(
            name,
            0,
            **_stage_paths(big),
            out_dir=tmp_path / name,
            engine=engine,
            model_params=TINY[name],
            config_hash="h",
            window_pool=POOL,
        )
        score[name] = s["best_dev_emotion_wf1"]
    assert score["concat_aligned"] > 0.8 and score["cross_attention"] > 0.8, score
    assert score["concat_misaligned"] < 0.5, score


def test_activity_joins_each_dense_step_by_timestamp(files: dict[str, Any]) -> None:
    from avemo.video.store import FrameStore

    f = files["train"]
    ds = ds_for(f, "train", "dx7_aligned")
    store = FrameStore(f["root"] / "frames_dense")
    g = ACT_GRID * ACT_GRID
    for i, name in enumerate(ds.clip_names[:5]):
        act, _ = store.activity(str(name))
        n = int(ds.a["lengths"][i])
        np.testing.assert_allclose(ds.a["video_seq"][i, :n, DV:], act[:n], atol=1e-6)
        assert not ds.a["video_seq"][i, n:, DV:].any()  # padding stays empty
    # The shuffled control moves the windows only: activity stays with its frame.
    sh = ds_for(f, "train", "dx7_shuffled")
    np.testing.assert_array_equal(sh.a["video_seq"], ds.a["video_seq"])
    assert ds.dims()["video_dim"] == DV + g and ds.dims()["activity_dim"] == g
    assert ds.without("audio").activity_dim == g


@pytest.mark.parametrize("segments", [5, 0])
def test_pool_windows_reads_a_memory_map_in_chunks_with_the_same_result(
        tmp_path: Path, segments: int) -> None:
    from avemo.fusion.inputs import pool_windows

    raw = np.random.default_rng(0).normal(size=(37, 4, 11)).astype(np.float32)
    np.save(tmp_path / "w.npy", raw)
    mm = np.load(tmp_path / "w.npy", mmap_mode="r")
    rows = np.array([0, 3, 4, 17, 18, 36])

    def maps() -> int:  # mappings of the file in this process (the test's own memmap: 1)
        return Path("/proc/self/maps").read_text().count(str(tmp_path / "w.npy"))

    before = maps()
    want = pool_windows(raw[rows], segments)  # the array in memory, all at once
    got = pool_windows(mm, segments, chunk=4, rows=rows)  # chunks read with pread
    np.testing.assert_array_equal(got, want)
    assert maps() == before  # pooling left no mapping of its own
    np.testing.assert_array_equal(pool_windows(mm, segments, chunk=5),
                                  pool_windows(raw, segments))
    assert pool_windows(mm, segments, rows=rows[:0]).shape == (0, want.shape[1])


def test_scaling_stats_read_in_chunks_equal_numpy_on_the_valid_rows() -> None:
    from avemo.fusion.inputs import _stats

    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, size=(23, 4, 6)).astype(np.float32)
    valid = rng.random((23, 4)) < 0.6
    mean, std = _stats(x, valid, chunk=5)
    np.testing.assert_allclose(mean, x[valid].mean(0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(std, x[valid].std(0, dtype=np.float64), rtol=1e-12)
    mean, std = _stats(x, np.zeros_like(valid))  # nothing valid: identity scaling
    assert (mean == 0).all() and (std == 1).all()


def test_embedding_file_read_without_steps_still_checks_the_file(tmp_path: Path) -> None:
    from avemo.errors import DataStageError
    from avemo.fusion.inputs import EmbeddingFile

    arrays = {"clip_name": np.array(["a", "b"]), "emb": np.ones((2, 3), np.float32),
              "lengths": np.array([2, 1]), "t_s": np.zeros((2, 2), np.float32),
              "seq": np.ones((2, 2, 3), np.float32)}
    np.savez(tmp_path / "e.npz", **arrays)
    full, light = EmbeddingFile.read(tmp_path / "e.npz"), EmbeddingFile.read(tmp_path / "e.npz",
                                                                             seq=False)
    np.testing.assert_array_equal(light.emb, full.emb)
    assert full.seq.shape == (2, 2, 3) and light.seq.shape == (2, 0, 0)
    np.savez(tmp_path / "f.npz", **{k: v for k, v in arrays.items() if k != "seq"})
    with pytest.raises(DataStageError, match="lacks key"):
        EmbeddingFile.read(tmp_path / "f.npz", seq=False)


def test_unscaled_fusion_passes_raw_features_through_unclipped() -> None:
    # The study's fusion concatenates raw features (eGeMAPS values in the thousands): its
    # identity standardiser must not clip them, or scaling would be switched on by the back door.
    from avemo.fusion.models import ConcatMisaligned

    raw = torch.tensor([[1400.0, -2500.0, 0.5]])
    unscaled = ConcatMisaligned(video_dim=3, audio_dim=3, scaling=False)
    assert torch.equal(unscaled.norm_a(raw), raw) and torch.equal(unscaled.norm_v(raw), raw)
    scaled = ConcatMisaligned(video_dim=3, audio_dim=3, scaling=True)
    scaled.norm_a.set_stats(np.zeros(3), np.full(3, 1e-6))  # near-constant train features
    assert scaled.norm_a(raw).abs().max().item() == scaled.norm_a.CLAMP
