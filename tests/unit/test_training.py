"""Training engine, losses, checkpoints, datasets and inference."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import avemo.training.engine as engine
from avemo import params as P
from avemo.config import config_errors, load_config, load_schema, validate_config
from avemo.errors import ConfigError, TrainingError
from avemo.labels import EMOTIONS, SENTIMENTS
from avemo.layout import EPOCH_METRICS, LIVE_DIR, live_curves
from avemo.models import build_model
from avemo.report.inputs import read_epoch_log
from avemo.training import (
    ClipSequenceDataset,
    FrameDataset,
    SequenceDataset,
    VectorDataset,
    export_embeddings,
    predict,
    seed_everything,
    train,
)
from avemo.training.data import LazyItems
from avemo.training.losses import (
    MultiTaskLoss,
    balanced_sampler,
    focal_loss,
    inverse_frequency_weights,
)
from avemo.training.settings import EngineSettings
from avemo.training.stage import train_stream

predict_mod = importlib.import_module("avemo.training.predict")  # the package re-exports predict()
D = 16
TRAIN_KW: dict[str, Any] = dict(
    epochs=4,
    batch_size=8,
    lr=1e-2,
    weight_decay=1e-4,
    patience=10,
    seed=3,
    w_emotion=1.0,
    w_sentiment=0.5,
    imbalance="none",
    focal_gamma=2.0,
    num_workers=0,
    device="cpu",
    config_hash="abc123",
)


def vectors(n: int, split: str, seed: int) -> VectorDataset:
    """Separable-ish vectors: the class sets the mean."""
    rng = np.random.default_rng(seed)
    emo = rng.integers(0, 7, n)
    sent = emo % 3
    x = rng.normal(size=(n, D)).astype(np.float32) * 0.5
    x[np.arange(n), emo] += 2.0
    return VectorDataset(x * 10 + 5, [f"dia{i}_utt0" for i in range(n)], emo, sent, split=split)


def fresh_model(seed: int = 0) -> torch.nn.Module:
    seed_everything(seed)
    return build_model("audio_mlp", in_dim=D, width=32, hidden=16, dropout=0.2)


def epoch_log(out: Path) -> pd.DataFrame:
    """The run's DVCLive epoch log, through the report's reader."""
    return read_epoch_log(live_curves(out / LIVE_DIR))


def log_without_time(out: Path) -> pd.DataFrame:
    return epoch_log(out).drop(columns="seconds")


@pytest.fixture(scope="module")
def data() -> tuple[VectorDataset, VectorDataset]:
    return vectors(48, "train", 0), vectors(24, "dev", 1)


# ---------------------------------------------------------------- losses


def test_class_weight_upweights_rare_classes() -> None:
    w = inverse_frequency_weights(np.array([90, 10, 0, 0, 0, 0, 0]))
    assert w[1] > w[0] and w[1] / w[0] == pytest.approx(9.0)
    counts = np.array([90, 10, 1, 1, 1, 1, 1])
    weighted = MultiTaskLoss(
        1, 0, "class_weight", emotion_counts=counts, sentiment_counts=np.ones(3)
    )
    plain = MultiTaskLoss(1, 0, "none")
    target = {"emotion": torch.tensor([0, 1])}
    right, wrong = [5.0, 0, 0, 0, 0, 0, 0], [0.0] * 7
    rare_missed = {"emotion": torch.tensor([right, wrong])}
    common_missed = {"emotion": torch.tensor([wrong, [0, 5.0, 0, 0, 0, 0, 0]])}
    # Missing the rare class costs more than under plain CE, missing the common one less.
    assert weighted(rare_missed, target) > plain(rare_missed, target)
    assert weighted(common_missed, target) < plain(common_missed, target)


def test_focal_below_ce_for_confident_correct() -> None:
    logits, target = torch.tensor([[6.0, 0, 0, 0, 0, 0, 0]]), torch.tensor([0])
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert focal_loss(logits, target, 2.0) < 0.01 * ce
    assert focal_loss(logits, target, 0.0) == pytest.approx(float(ce))  # gamma 0 is CE


def test_sampler_draws_rare_classes_more_often() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    s = balanced_sampler(labels, 7, torch.Generator().manual_seed(0))
    drawn = labels[np.fromiter(iter(s), int)]
    assert len(drawn) == 100
    draws = np.concatenate([labels[np.fromiter(iter(s), int)] for _ in range(20)])
    assert 0.4 < (draws == 1).mean() < 0.6  # 10% in the data, ~50% drawn


def test_zero_sentiment_weight_gives_no_sentiment_gradient() -> None:
    model = fresh_model()
    ds = vectors(8, "train", 0)
    batch = ds.collate([ds[i] for i in range(8)])
    MultiTaskLoss(1.0, 0.0)(model(batch), batch).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head.sentiment.parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.emotion.parameters()
    )


def test_bad_loss_options() -> None:
    with pytest.raises(TrainingError, match="imbalance"):
        MultiTaskLoss(imbalance="oversample")
    with pytest.raises(TrainingError, match="not both 0"):
        MultiTaskLoss(0.0, 0.0)


# ---------------------------------------------------------------- datasets


def test_empty_split_is_named() -> None:
    with pytest.raises(TrainingError, match="dev split has no clips.*qc.csv"):
        VectorDataset(np.zeros((0, 4)), [], [], [], split="dev")
    with pytest.raises(TrainingError, match="test split has no frames"):
        FrameDataset(np.zeros((0, 8, 8, 3), np.uint8), [], [], [], split="test")


def test_sequence_collate_pads_and_masks() -> None:
    seqs = [np.ones((3, 4), np.float32), np.ones((1, 4), np.float32)]
    ds = SequenceDataset(seqs, ["a", "b"], [0, 1], [0, 1], t_s=[np.array([0.0, 0.5, 1.0]), [0.2]])
    b = ds.collate([ds[0], ds[1]])
    assert b["x"].shape == (2, 3, 4) and b["mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["x"][1, 1:].abs().sum() == 0 and torch.isnan(b["t_s"][1, 1:]).all()
    frames = [np.zeros((2, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)]
    cb = ClipSequenceDataset(frames, ["a", "b"], [0, 1], [0, 1]).collate
    items = ClipSequenceDataset(frames, ["a", "b"], [0, 1], [0, 1])
    assert cb([items[0], items[1]])["x"].shape == (2, 4, 3, 8, 8)


# ---------------------------------------------------------------- settings


def test_engine_settings_are_the_schema_engine_properties() -> None:
    defs = load_schema()["$defs"]
    props = defs["engine_props"]
    assert EngineSettings.names() == tuple(props)  # same names, same order
    assert EngineSettings().as_dict() == {k: v["default"] for k, v in props.items()}
    assert defs["engine"]["properties"] == props
    # Overrides accept every key, each with the engine's constraints and no default (one would
    # be filled in and replace train.engine's value).
    override = defs["engine_override"]["properties"]
    assert override == {k: {"$ref": f"#/$defs/engine/properties/{k}"} for k in props}


def test_repository_config_builds_engine_settings(repo: Path) -> None:
    cfg = load_config(repo / "config.yaml")
    assert EngineSettings.from_mapping(cfg["train"]["engine"]) == EngineSettings()  # = defaults
    # What each training and fusion job receives (train.engine + the overrides) builds too.
    for model in cfg["train"]["models"]:
        EngineSettings.from_mapping(P.train(cfg, model)["engine"])
    for model in (m for m in cfg["fusion"]["models"] if not m.startswith("late")):
        assert EngineSettings.from_mapping(P.fusion(cfg, model)["engine"]).epochs == 15


def test_config_without_engine_gives_schema_defaults() -> None:
    cfg = validate_config({})
    s = EngineSettings.from_mapping(cfg["train"]["engine"])
    assert s == EngineSettings()
    # The demo's values (config.yaml restates them; the study's live in presets/meld.yaml).
    assert (s.epochs, s.patience, s.imbalance, s.grad_clip) == (20, 0, "none", 5.0)


def test_overrides_take_every_key_and_get_no_defaults() -> None:
    cfg = validate_config({"fusion": {"engine": {"grad_clip": 1.0}}})
    assert cfg["fusion"]["engine"] == {"grad_clip": 1.0}  # not filled: train.engine still counts
    assert config_errors({"fusion": {"engine": {"grad_clip": -1}}})


def test_unknown_engine_key_is_named(tmp_path: Path) -> None:
    for section in ({"train": {"engine": {"lr_decay": 0.1}}},
                    {"train": {"models": {"cnn5": {"engine": {"lr_decay": 0.1}}}}},
                    {"fusion": {"engine": {"lr_decay": 0.1}}}):
        problems = config_errors(section)
        assert any("engine.lr_decay" in p and "unknown key" in p for p in problems), problems
    with pytest.raises(ConfigError, match="'lr_decay'.*allowed: epochs"):
        EngineSettings.from_mapping({"epochs": 2, "lr_decay": 0.1})
    with pytest.raises(ConfigError, match="lr_decay"):
        train(fresh_model(), *vectors_pair(), tmp_path, **TRAIN_KW, lr_decay=0.1)
    with pytest.raises(ConfigError, match=r"audio_mlp.*'lr_decay'"):  # before any data is read
        train_stream("audio_mlp", 0, {}, tmp_path, engine={"lr_decay": 0.1}, model_params={},
                     config_hash="h")


def vectors_pair() -> tuple[VectorDataset, VectorDataset]:
    return vectors(16, "train", 0), vectors(8, "dev", 1)


# ---------------------------------------------------------------- engine


def test_fit_with_settings_equals_train_with_keywords(data: Any, tmp_path: Path) -> None:
    kw = {**TRAIN_KW, "epochs": 2}
    train(fresh_model(), *data, tmp_path / "train", **kw)
    run = {k: kw.pop(k) for k in ("seed", "config_hash", "num_workers")}
    engine.fit(fresh_model(), *data, tmp_path / "fit", EngineSettings(**kw), **run)
    pd.testing.assert_frame_equal(
        log_without_time(tmp_path / "train"), log_without_time(tmp_path / "fit"), check_exact=True
    )


@pytest.mark.parametrize("grad_clip", [0.0, 0.25])
def test_grad_clip_setting_is_used(
    data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grad_clip: float
) -> None:
    norms: list[float] = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params: Any, max_norm: float, *a: Any, **k: Any) -> torch.Tensor:
        norms.append(max_norm)
        return real(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train(fresh_model(), *data, tmp_path, **{**TRAIN_KW, "epochs": 1, "grad_clip": grad_clip})
    assert norms == ([grad_clip] * 6 if grad_clip else [])  # 48 items / batch 8




def test_train_writes_log_and_checkpoints(data: Any, tmp_path: Path) -> None:
    model = fresh_model()  # seeds (and so sets the flag) itself: read the flag after it
    flag = torch.are_deterministic_algorithms_enabled()
    summary = train(model, *data, tmp_path, **TRAIN_KW)
    assert torch.are_deterministic_algorithms_enabled() == flag  # global setting restored
    log = epoch_log(tmp_path)
    assert list(log.columns) == list(engine.LOG_COLUMNS) and log["epoch"].tolist() == [1, 2, 3, 4]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert summary["best_dev_emotion_wf1"] == log["dev_emotion_wf1"].max() > 0.3
    assert summary["device"] == "cpu" and summary["amp"] is False
    ck = torch.load(tmp_path / "last.pt", weights_only=True)  # tensors and plain types only
    assert ck["epoch"] == 4 and ck["config_hash"] == "abc123" and "numpy" in ck["rng"]
    assert (tmp_path / "best.pt").exists()


def test_same_seed_is_bitwise_identical(data: Any, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        model = fresh_model()
        train(model, *data, tmp_path / name, **{**TRAIN_KW, "imbalance": "sampler"})
        runs.append((log_without_time(tmp_path / name), predict(model, data[1], "cpu")))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0], check_exact=True)
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1], check_exact=True)


def _frames(n: int, split: str, seed: int) -> FrameDataset:
    rng = np.random.default_rng(seed)
    emo = rng.integers(0, 7, n)
    frames = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    frames[np.arange(n), 0, 0, 0] = (emo * 36).astype(np.uint8)  # a weak label cue
    return FrameDataset(frames, [f"dia{i}_utt0" for i in range(n)], emo, emo % 3,
                        augment=split == "train", split=split)


def test_augmented_training_is_the_same_with_any_number_of_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Augmentation is keyed by (seed, epoch, sample index), never by the process that loads
    the item: 0, 1 or 2 DataLoader workers (the rule's threads - 1) give the same run."""
    # Workers are used on CUDA only: force them on so this CPU test covers that path (the
    # engine's and prediction's loaders both take them from predict.loader_options).
    monkeypatch.setattr(predict_mod, "loader_workers", lambda n, device: n)
    train_ds, dev_ds = _frames(24, "train", 0), _frames(12, "dev", 1)
    runs = []
    for workers in (0, 1, 2):
        seed_everything(0)
        model = build_model("cnn5", base_width=4)
        out = tmp_path / f"w{workers}"
        train(model, train_ds, dev_ds, out, **{**TRAIN_KW, "epochs": 2, "num_workers": workers})
        runs.append((log_without_time(out),
                     predict(model, dev_ds, "cpu", num_workers=workers)))
    for log, preds in runs[1:]:
        pd.testing.assert_frame_equal(runs[0][0], log, check_exact=True)
        pd.testing.assert_frame_equal(runs[0][1], preds, check_exact=True)


def test_no_loader_workers_on_cpu() -> None:
    from avemo.training.predict import loader_workers

    assert loader_workers(3, torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cuda")) == 3


def test_loader_options_pin_memory_and_workers_per_device() -> None:
    """Pinned host memory (so non_blocking copies overlap) and workers on CUDA only; the
    engine's train and eval loaders get them."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert predict_mod.loader_options(2, cpu) == {"num_workers": 0, "pin_memory": False}
    assert predict_mod.loader_options(2, cuda) == {"num_workers": 2, "pin_memory": True}
    ds = _frames(4, "train", 0)
    for device, pinned, workers in ((cpu, False, 0), (cuda, True, 2)):
        train_loader = engine._train_loader(ds, 2, 2, 0, 1, sampler=False, device=device)
        eval_loader = predict_mod.make_eval_loader(ds, 2, 2, device)
        for loader in (train_loader, eval_loader):
            assert (loader.pin_memory, loader.num_workers) == (pinned, workers)


def test_prediction_takes_the_engine_settings() -> None:
    """Prediction and export get the batch size, workers and amp of the dev evaluation."""
    s = EngineSettings(batch_size=7, amp=False, device="cpu")
    assert predict_mod.eval_options(s, 3) == {"device": "cpu", "batch_size": 7,
                                              "num_workers": 3, "amp": False}


def test_weighted_f1_equals_sklearn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for n, k in [(1, 7), (5, 7), (40, 7), (200, 3), (13, 3)]:
        y_true, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)
        y_pred[: n // 2] = y_true[: n // 2]
        want = f1_score(y_true, y_pred, labels=list(range(k)), average="weighted",
                        zero_division=0)
        assert engine.weighted_f1(y_true, y_pred, k) == want
    assert engine.weighted_f1(np.zeros(4, int), np.full(4, 2), 7) == 0.0


def test_training_job_imports_neither_sklearn_nor_torchvision() -> None:
    """Each costs about a second of every training job's start-up (30+ jobs per run)."""
    code = textwrap.dedent("""
        import sys
        import avemo.training.stage
        from avemo.models import build_model
        build_model("video_branch", weights=None, width_mult=0.25)
        print(sorted(m for m in ("sklearn", "torchvision") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def _augmented(ds: FrameDataset, i: int) -> torch.Tensor:
    """Item ``i`` as the model sees it: uint8 frame and brightness, normalised."""
    batch = predict_mod.to_device(ds.collate([ds[i]]), torch.device("cpu"))
    return batch["x"][0]


def test_augmentation_draws_depend_on_seed_epoch_and_index_only() -> None:
    ds = _frames(4, "train", 0)
    ds.set_epoch(3, 1)
    a = _augmented(ds, 2)
    torch.rand(5)  # the global RNG plays no part
    assert torch.equal(a, _augmented(ds, 2))
    epoch1 = [_augmented(ds, i) for i in range(4)]
    ds.set_epoch(3, 2)
    assert any(not torch.equal(x, _augmented(ds, i)) for i, x in enumerate(epoch1))


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted(data: Any, tmp_path: Path) -> None:
    ref = fresh_model()
    train(ref, *data, tmp_path / "ref", **TRAIN_KW)

    def stop_after_2(epoch: int) -> None:
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(fresh_model(), *data, tmp_path / "run", **TRAIN_KW, on_epoch_end=stop_after_2)
    # A new process would build a freshly initialised model: use another seed to prove the
    # weights really come from the checkpoint.
    resumed = fresh_model(seed=99)
    summary = train(resumed, *data, tmp_path / "run", **TRAIN_KW)
    assert summary["resumed_from_epoch"] == 2
    pd.testing.assert_frame_equal(
        log_without_time(tmp_path / "ref"), log_without_time(tmp_path / "run"), check_exact=True
    )
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_finished_run_is_not_retrained(data: Any, tmp_path: Path) -> None:
    train(fresh_model(), *data, tmp_path, **TRAIN_KW)
    before = (tmp_path / "last.pt").stat().st_mtime_ns
    summary = train(fresh_model(), *data, tmp_path, **TRAIN_KW)
    assert summary["epochs_run"] == 4 and (tmp_path / "last.pt").stat().st_mtime_ns == before


def test_config_hash_mismatch_refused(data: Any, tmp_path: Path) -> None:
    train(fresh_model(), *data, tmp_path, **{**TRAIN_KW, "epochs": 1})
    with pytest.raises(TrainingError, match=r"last\.pt.*abc123.*xyz.*delete the folder"):
        train(fresh_model(), *data, tmp_path, **{**TRAIN_KW, "config_hash": "xyz"})


def test_corrupted_checkpoint_is_a_clear_error(data: Any, tmp_path: Path) -> None:
    train(fresh_model(), *data, tmp_path, **{**TRAIN_KW, "epochs": 1})
    raw = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TrainingError, match=r"last\.pt is corrupted.*delete"):
        train(fresh_model(), *data, tmp_path, **TRAIN_KW)


@pytest.mark.parametrize("imbalance", ["class_weight", "focal", "sampler"])
def test_imbalance_options_train(data: Any, tmp_path: Path, imbalance: str) -> None:
    summary = train(
        fresh_model(), *data, tmp_path, **{**TRAIN_KW, "epochs": 2, "imbalance": imbalance}
    )
    assert summary["epochs_run"] == 2


def test_early_stopping(data: Any, tmp_path: Path) -> None:
    # lr=0: nothing improves after epoch 1, so patience 2 stops after epoch 3.
    summary = train(
        fresh_model(), *data, tmp_path, **{**TRAIN_KW, "lr": 0.0, "patience": 2, "epochs": 10}
    )
    assert summary["stopped_early"] and summary["epochs_run"] == 3 and summary["best_epoch"] == 1


def test_test_split_never_touched(
    data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = engine.collect_outputs

    def spy(model: Any, ds: Any, *a: Any, **k: Any) -> Any:
        seen.append(ds.split)
        return real(model, ds, *a, **k)

    def no_predict(*_: Any, **__: Any) -> None:
        raise AssertionError("train must not call predict")

    monkeypatch.setattr(engine, "collect_outputs", spy)
    monkeypatch.setattr(predict_mod, "predict", no_predict)
    train(fresh_model(), *data, tmp_path, **{**TRAIN_KW, "epochs": 2})
    assert seen == ["dev", "dev"]


def test_empty_train_split_refused(data: Any, tmp_path: Path) -> None:
    class Empty(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 0

    with pytest.raises(TrainingError, match="train split is empty"):
        train(fresh_model(), Empty(), data[1], tmp_path, **TRAIN_KW)


# ---------------------------------------------------------------- predict / embeddings


def frames_ds(split: str, n_clips: int = 6, per_clip: int = 3) -> FrameDataset:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n_clips * per_clip, 32, 32, 3), dtype=np.uint8)
    clips = np.repeat([f"dia1_utt{i}" for i in range(n_clips)], per_clip)
    emo = np.repeat(np.arange(n_clips) % 7, per_clip)
    return FrameDataset(frames, clips, emo, emo % 3, augment=split == "train", split=split)


def test_frame_model_trains_and_predicts_per_clip(tmp_path: Path) -> None:
    seed_everything(0)
    model = build_model("cnn5", base_width=4, hidden=16)
    kw = {**TRAIN_KW, "epochs": 1, "config_hash": "f"}
    train(model, frames_ds("train"), frames_ds("dev"), tmp_path, **kw)
    dev = frames_ds("dev")
    df = predict(model, dev, "cpu")
    expected = (
        ["clip_name", "emotion", "sentiment"]
        + [f"p_emotion_{e}" for e in EMOTIONS]
        + [f"p_sentiment_{s}" for s in SENTIMENTS]
    )
    assert list(df.columns) == expected and len(df) == 6
    assert df["clip_name"].tolist() == [f"dia1_utt{i}" for i in range(6)]
    assert df["emotion"].tolist() == [EMOTIONS[i % 7] for i in range(6)]
    np.testing.assert_allclose(df.filter(like="p_emotion_").sum(axis=1), 1.0, rtol=1e-5)
    # Mean of the 3 frame logits, then softmax.
    model.eval()
    with torch.no_grad():
        batch = predict_mod.to_device(dev.collate([dev[i] for i in range(3)]), torch.device("cpu"))
        logits = model(batch)["emotion"].mean(0)
    np.testing.assert_allclose(df.filter(like="p_emotion_").iloc[0], logits.softmax(0), atol=1e-5)
    for how in ("max", "vote"):
        p = predict(model, dev, "cpu", aggregate=how).filter(like="p_sentiment_")
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    export_embeddings(model, dev, tmp_path / "embeddings_dev.npz", "cpu")
    npz = np.load(tmp_path / "embeddings_dev.npz")
    assert npz["clip_name"].tolist() == df["clip_name"].tolist() and npz["emb"].shape == (6, 32)


def test_export_sequence_embeddings(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (5, 2, 3)]
    t_s = [np.arange(len(s)) * 0.01 for s in seqs]
    ds = SequenceDataset(seqs, ["a", "b", "c"], [0, 1, 2], [0, 1, 2], t_s=t_s, split="dev")
    model = build_model("audio_cnn", in_dim=8, channels=12)
    export_embeddings(model, ds, tmp_path / "embeddings_dev.npz", "cpu", batch_size=2)
    npz = np.load(tmp_path / "embeddings_dev.npz")
    assert npz["emb"].shape == (3, 12) and npz["seq"].shape == (3, 5, 12)
    assert npz["lengths"].tolist() == [5, 2, 3]
    assert np.isnan(npz["t_s"][1, 2:]).all() and npz["t_s"][0, 4] == pytest.approx(0.04)
    assert not npz["seq"][1, 2:].any()
    model.eval()
    with torch.no_grad():  # the valid steps are the model's own per-step outputs
        for i, n in enumerate((5, 2, 3)):
            own = model(ds.collate([ds[i]]))["seq"][0].numpy()
            np.testing.assert_allclose(npz["seq"][i, :n], own, atol=1e-5)


def test_lazy_items_give_the_same_batches() -> None:
    """Datasets over LazyItems (what build_dataset makes: items read from their store on
    access) equal datasets over in-memory arrays."""
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(n, 4)).astype(np.float16) for n in (3, 1, 6)]
    lazy = LazyItems(seqs.__getitem__, range(3), [len(s) for s in seqs])
    a = SequenceDataset(seqs, ["a", "b", "c"], [0, 1, 2], [0, 1, 2], max_len=4)
    b = SequenceDataset(lazy, ["a", "b", "c"], [0, 1, 2], [0, 1, 2], max_len=4)
    for k in ("x", "mask", "lengths"):
        assert torch.equal(a.collate([a[i] for i in range(3)])[k],
                           b.collate([b[i] for i in range(3)])[k])
    for got, want in zip(a.feature_stats(), b.feature_stats(), strict=True):
        np.testing.assert_array_equal(got, want)
    frames = rng.integers(0, 256, (4, 6, 6, 3), np.uint8)
    fa = FrameDataset(frames, list("wxyz"), [0] * 4, [0] * 4)
    fb = FrameDataset(LazyItems(frames.__getitem__, range(4)), list("wxyz"), [0] * 4, [0] * 4)
    assert all(torch.equal(fa[i]["x"], fb[i]["x"]) for i in range(4))
    with pytest.raises(TrainingError, match="empty sequences"):
        SequenceDataset(LazyItems(seqs.__getitem__, range(3), [3, 0, 6]), list("abc"),
                        [0] * 3, [0] * 3)


def test_epoch_log_is_dvclive_files_where_layout_says(data: Any, tmp_path: Path) -> None:
    """DVCLive writes one history per epoch metric (step = epoch) and the last epoch's summary
    at the paths avemo.layout names; it writes no dvc.yaml and saves no experiment."""
    import json

    train(fresh_model(), *data, tmp_path, **TRAIN_KW)
    live = tmp_path / LIVE_DIR
    written = {p.relative_to(live).as_posix() for p in live.rglob("*") if p.is_file()}
    curves = live_curves(live)
    assert written == {"metrics.json", *(Path(p).relative_to(live).as_posix()
                                         for p in curves.values())}
    log = epoch_log(tmp_path)
    assert list(log.columns) == ["epoch", *EPOCH_METRICS] and log["epoch"].tolist() == [1, 2, 3, 4]
    last = json.loads((live / "metrics.json").read_text())
    assert last["step"] == 4 and last["train_loss"] == log["train_loss"].iloc[-1]


class _NoLog:
    def __init__(self, *a: Any, **k: Any) -> None:
        pass

    def log(self, row: Any) -> None:
        pass

    def close(self) -> None:
        pass


def test_logging_changes_no_result(data: Any, tmp_path: Path, monkeypatch) -> None:
    """Weights, summary and predictions are the same with the epoch log and without it."""
    ref = fresh_model()
    a = train(ref, *data, tmp_path / "logged", **TRAIN_KW)
    monkeypatch.setattr(engine, "EpochLog", _NoLog)
    bare = fresh_model()
    b = train(bare, *data, tmp_path / "bare", **TRAIN_KW)
    assert not (tmp_path / "bare" / LIVE_DIR).exists()
    assert {k: v for k, v in a.items()} == {k: v for k, v in b.items()}
    for (k, x), y in zip(ref.state_dict().items(), bare.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    pd.testing.assert_frame_equal(predict(ref, data[1], "cpu"), predict(bare, data[1], "cpu"))


# ---------------------------------------------------------------- kill -9


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import test_training as T
    out = Path(sys.argv[1])

    class Slow(T.VectorDataset):
        def __getitem__(self, i):
            curve = Path(T.live_curves(out / T.LIVE_DIR)["train_loss"])  # header + 2 epochs
            if curve.exists() and len(curve.read_text().splitlines()) >= 3:
                (out / "mid_epoch").touch()  # epoch 3 under way: wait to be killed
                time.sleep(60)
            return super().__getitem__(i)

    tr, dv = T.vectors(48, "train", 0), T.vectors(24, "dev", 1)
    slow = Slow(tr.x, tr.clip_names, tr.emotion_idx, tr.sentiment_idx, split="train")
    T.train(T.fresh_model(), slow, dv, out, **T.TRAIN_KW)
""")


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume(data: Any, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "mid_epoch").exists():
            assert proc.poll() is None, "training subprocess ended early"
            assert time.monotonic() < deadline, "subprocess never reached epoch 3"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    summary = train(fresh_model(seed=5), *data, out, **TRAIN_KW)
    assert summary["resumed_from_epoch"] == 2
    train(fresh_model(), *data, tmp_path / "ref", **TRAIN_KW)
    pd.testing.assert_frame_equal(
        log_without_time(tmp_path / "ref"), log_without_time(out), check_exact=True
    )


def test_fit_pins_cpu_threads_whatever_the_job_was_given(tmp_path: Path) -> None:
    """The thread count changes floating-point sums: fit fixes torch's intra-op threads to the
    engine's cpu_threads, so a job given 2 cores computes like one given 1."""
    train, dev = vectors(16, "train", 0), vectors(8, "dev", 1)
    prev = torch.get_num_threads()
    logs = []
    try:
        for given in (2, 1):
            torch.set_num_threads(given)
            out = tmp_path / f"t{given}"
            s = EngineSettings(epochs=2, batch_size=8, device="cpu", cpu_threads=1)
            engine.fit(fresh_model(), train, dev, out, s, seed=0, config_hash="h")
            assert torch.get_num_threads() == 1
            logs.append(log_without_time(out))
    finally:
        torch.set_num_threads(prev)
    pd.testing.assert_frame_equal(logs[0], logs[1])


def test_epoch_log_writes_files_and_leaves_the_repository_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a Git folder without DVC, stock DVCLive initialises a DVC repo (its fallback); the
    pipeline's log only writes its own files."""
    import subprocess

    from avemo.training.live import EpochLog

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    log = EpochLog(tmp_path / "run" / LIVE_DIR)
    row = {name: 0.5 for name in EPOCH_METRICS} | {"epoch": 1}
    log.log(row)
    log.close()
    assert not (tmp_path / ".dvc").exists()
    assert epoch_log(tmp_path / "run")["epoch"].tolist() == [1]


def test_sequence_statistics_streamed_equal_the_concatenated_ones() -> None:
    from avemo.training.data import SequenceDataset

    rng = np.random.default_rng(0)
    seqs = [(rng.normal(size=(int(rng.integers(1, 300)), 8)) * 3 - 5).astype(np.float16)
            for _ in range(50)]
    ds = SequenceDataset(seqs, [f"dia{i}_utt0" for i in range(50)], np.zeros(50, int),
                         np.zeros(50, int))
    mean, std = ds.feature_stats()
    every = np.concatenate([np.asarray(s, dtype=np.float32) for s in seqs])
    # The model keeps them as float32: there they are the same numbers.
    np.testing.assert_array_equal(mean.astype(np.float32), every.mean(0, dtype=np.float64)
                                  .astype(np.float32))
    np.testing.assert_array_equal(std.astype(np.float32), every.std(0, dtype=np.float64)
                                  .astype(np.float32))
