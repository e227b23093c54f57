"""The CUDA path, checked on CPU: device choice, weights cache, AMP, loaders, pooling, RNG,
provenance. Capabilities the machine lacks (a GPU, bfloat16, several devices) are mocked."""

from __future__ import annotations

import importlib
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import avemo.training.checkpoint as checkpoint
import avemo.training.engine as engine
from avemo.errors import ConfigError, TrainingError
from avemo.labels import EMOTIONS
from avemo.models import build_model
from avemo.models import vgg_backbone as vb
from avemo.models.audio_mlp import InputStandardizer
from avemo.models.masking import encode_valid_frames, spatial_pool
from avemo.training import ClipSequenceDataset, FrameDataset, VectorDataset, seed_everything
from avemo.training.data import frames_to_tensor
from avemo.training.settings import EngineSettings
from avemo.training.stage import build_resumable

predict_mod = importlib.import_module("avemo.training.predict")
REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def frames(n: int = 12, size: int = 32, split: str = "train", per_clip: int = 3) -> FrameDataset:
    rng = np.random.default_rng(0)
    emo = np.repeat(np.arange(n // per_clip) % 7, per_clip)
    return FrameDataset(rng.integers(0, 256, (n, size, size, 3), np.uint8),
                        np.repeat([f"d0_u{i}" for i in range(n // per_clip)], per_clip),
                        emo, emo % 3, augment=split == "train", split=split)


KW: dict[str, Any] = dict(epochs=1, batch_size=4, lr=1e-3, device="cpu", config_hash="h")


# ------------------------------------------------------------------ 1. the device


def test_cuda_without_a_gpu_fails_at_once_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        predict_mod.resolve_device("cuda")
    msg = str(err.value)
    assert "\n" not in msg and "no usable CUDA GPU" in msg
    assert "slurm-gpu" in msg and "device: cpu" in msg
    assert predict_mod.resolve_device("auto") == CPU


def test_stage_refuses_cuda_before_reading_any_data(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    from avemo.training.stage import train_stream

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: cpu"):  # splits are never read
        train_stream("cnn5", 0, {}, tmp_path, engine={"device": "cuda"}, model_params={},
                     config_hash="h")


def test_meld_preset_asks_for_the_gpu_profile_and_cuda() -> None:
    text = (REPO / "workflow" / "presets" / "meld.yaml").read_text()
    assert "--profile workflow/profiles/slurm-gpu" in text
    assert "profiles/slurm " not in text and "profiles/default" not in text
    assert yaml.safe_load(text)["train"]["engine"]["device"] == "cuda"
    assert (REPO / "workflow" / "profiles" / "slurm-gpu" / "config.yaml").is_file()


# ------------------------------------------------------------------ 2. weights before the queue


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A torch hub cache in tmp and a node without network: any download raises."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*_: Any, **__: Any) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub"


def fill_cache(value: float = 0.01) -> Path:
    """A stand-in for torchvision's VGG-16 file, where torch hub expects it (fp16 to keep the
    file small; the loader copies it into float32 parameters)."""
    ref = vb.make_layers(vb.scaled_cfg(1.0)).state_dict()
    state = {f"features.{k}": torch.full(v.shape, value, dtype=torch.float16)
             for k, v in ref.items()}
    path = vb.weights_cache_path("IMAGENET1K_V1")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_offline_node_with_a_filled_cache_trains_from_imagenet(hub: Path, tmp_path: Path
                                                              ) -> None:
    path = fill_cache()
    assert path.parent == hub / "checkpoints" and path.name == "vgg16-397923af.pth"
    seed_everything(0)
    net = build_model("vgg16", weights="IMAGENET1K_V1", pool=1, hidden=8, frozen_blocks=5)
    assert net.weights_used == "IMAGENET1K_V1"
    assert torch.all(net.features[0].weight == torch.tensor(0.01, dtype=torch.float16).float())
    out = engine.train(net, frames(6), frames(6, split="dev"), tmp_path / "run", seed=0, **KW)
    assert out["weights_used"] == "IMAGENET1K_V1"


def test_offline_node_with_an_empty_cache_says_where_the_file_goes(hub: Path) -> None:
    with pytest.raises(TrainingError, match=str(hub / "checkpoints")):
        build_model("vgg16", weights="IMAGENET1K_V1")
    with pytest.raises(TrainingError, match="internet"):
        vb.prefetch_weights()


def test_prefetch_fills_the_cache_then_needs_no_network(monkeypatch: pytest.MonkeyPatch,
                                                        hub: Path) -> None:
    """`make weights` on the login node: the download lands at the path the jobs read."""
    fetched: list[str] = []

    def download(url: str, dst: str, *_: Any, **__: Any) -> None:
        fetched.append(url)
        ref = vb.make_layers(vb.scaled_cfg(1.0)).state_dict()
        torch.save({f"features.{k}": torch.zeros(v.shape, dtype=torch.float16)
                    for k, v in ref.items()}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    assert vb.prefetch_weights() == [vb.weights_cache_path("IMAGENET1K_V1")]
    assert fetched == [vb.weights_url("IMAGENET1K_V1")]
    assert vb.prefetch_weights() and len(fetched) == 1  # cached: not fetched again
    assert vb.main() == 0


def test_a_resumed_job_fetches_no_weights_and_reports_the_checkpoints(
        hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_cache()
    out = tmp_path / "run"
    seed_everything(0)
    net = build_resumable("vgg16", out, {"weights": "IMAGENET1K_V1", "pool": 1, "hidden": 8,
                                         "frozen_blocks": 5})
    engine.train(net, frames(6), frames(6, split="dev"), out, seed=0, **KW)
    # The node lost its cache (another node); a resumed build must not need it.
    vb.weights_cache_path("IMAGENET1K_V1").unlink()
    loads: list[str] = []
    monkeypatch.setattr(vb, "load_imagenet_features", lambda w: loads.append(w) or {})
    seed_everything(0)
    again = build_resumable("vgg16", out, {"weights": "IMAGENET1K_V1", "pool": 1, "hidden": 8,
                                           "frozen_blocks": 5})
    assert loads == [] and again.weights_used == vb.FROM_CHECKPOINT
    summary = engine.train(again, frames(6), frames(6, split="dev"), out, seed=0,
                           **{**KW, "epochs": 2})
    assert summary["resumed_from_epoch"] == 1
    assert summary["weights_used"] == again.weights_used == "IMAGENET1K_V1"


# ------------------------------------------------------------------ 3. AMP


@pytest.mark.parametrize("bf16, want", [(True, torch.bfloat16), (False, torch.float16)])
def test_amp_dtype_is_bfloat16_where_supported(monkeypatch: pytest.MonkeyPatch, bf16: bool,
                                               want: torch.dtype) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cuda = torch.device("cuda")
    assert predict_mod.amp_dtype(cuda, True) == want
    assert predict_mod.amp_dtype(cuda, False) is None
    assert predict_mod.amp_dtype(CPU, True) is None  # never on CPU
    s = EngineSettings()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # else GradScaler turns off
    optim = engine.Optimization.create(nn.Linear(2, 2), s, CPU, want)
    assert optim.scaler.is_enabled() == (want == torch.float16)  # loss scaling for fp16 only


def test_amp_dtype_is_float16_where_bfloat16_is_only_emulated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A V100 or T4: torch's default check says yes (emulation), the native check says no."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)
    assert predict_mod.amp_dtype(torch.device("cuda"), True) == torch.float16


def test_standardised_inputs_are_clamped_so_fp16_cannot_overflow() -> None:
    norm = InputStandardizer(3)
    norm.set_stats(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 2.0]))  # feature 0: constant
    z = norm(torch.tensor([[1.001, 3.0, -4.0]]))
    assert z[0, 0] == InputStandardizer.CLAMP  # 1e3 / 1e-6 would be 1e9: inf in float16
    assert torch.equal(z[0, 1:], torch.tensor([3.0, -2.0]))  # ordinary values are untouched
    assert torch.isfinite(z.half()).all()


class _Poisoned(nn.Module):
    """A linear model whose output is NaN for items flagged in x[:, 0] > 100."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 7)
        self.lin3 = nn.Linear(4, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"]
        x = torch.where(x[:, :1] > 100, torch.full_like(x, float("nan")), x)
        return {"emotion": self.lin(x), "sentiment": self.lin3(x), "embedding": x}


def _vectors(n: int, poisoned: list[int], split: str = "train") -> VectorDataset:
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    x[poisoned, 0] = 1000.0
    return VectorDataset(x, [f"d_u{i}" for i in range(n)], np.arange(n) % 7, np.arange(n) % 3,
                         split=split)


def test_a_non_finite_batch_is_skipped_and_counted(tmp_path: Path) -> None:
    train_ds, dev_ds = _vectors(16, [0]), _vectors(8, [], "dev")
    seed_everything(0)
    model = _Poisoned()
    kw = {**KW, "epochs": 2, "scheduler": "none", "imbalance": "none"}
    summary = engine.train(model, train_ds, dev_ds, tmp_path / "a", seed=0,
                           max_nonfinite_batches=1, **kw)
    assert summary["skipped_batches"] == 2  # one per epoch, training went on
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(TrainingError, match="max_nonfinite_batches = 0"):
        engine.train(_Poisoned(), train_ds, dev_ds, tmp_path / "b", seed=0,
                     max_nonfinite_batches=0, **kw)


def test_an_epoch_whose_every_batch_is_skipped_stops_the_run(tmp_path: Path) -> None:
    """Within the limit, but no batch made an update: not a train loss of 0.0."""
    train_ds, dev_ds = _vectors(8, list(range(8))), _vectors(8, [], "dev")
    seed_everything(0)
    kw = {**KW, "scheduler": "none", "imbalance": "none"}
    with pytest.raises(TrainingError, match="training loss became nan in epoch 1"):
        engine.train(_Poisoned(), train_ds, dev_ds, tmp_path, seed=0,
                     max_nonfinite_batches=5, **kw)


# ------------------------------------------------------------------ 4. throughput


def test_uint8_frames_normalised_on_the_device_equal_the_float_path() -> None:
    ds = frames(6)
    for epoch in (1, 2):
        ds.set_epoch(5, epoch)
        items = [ds[i] for i in range(6)]
        assert all(it["x"].dtype == torch.uint8 for it in items)  # a quarter of the bytes
        batch = predict_mod.to_device(ds.collate(items), CPU)
        want = torch.stack([frames_to_tensor(ds.frames[i], True, ds._generator(i))
                            for i in range(6)])
        assert torch.equal(batch["x"], want) and "jitter" not in batch
    dev = frames(6, split="dev")
    batch = predict_mod.to_device(dev.collate([dev[i] for i in range(6)]), CPU)
    assert torch.equal(batch["x"], torch.stack([frames_to_tensor(f, False) for f in dev.frames]))


def test_clip_frames_are_uint8_with_valid_indices_from_the_collate() -> None:
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 256, (n, 8, 8, 3), np.uint8) for n in (3, 1, 2)]
    ds = ClipSequenceDataset(clips, ["a", "b", "c"], [0, 1, 2], [0, 1, 2], augment=True)
    ds.set_epoch(0, 1)
    batch = ds.collate([ds[i] for i in range(3)])
    assert batch["x"].dtype == torch.uint8 and batch["jitter"].shape == (3,)
    assert batch["valid_idx"].tolist() == [0, 1, 2, 3, 6, 7]  # b*T + t, T = 3
    moved = predict_mod.to_device(batch, CPU)
    assert moved["lengths"] is batch["lengths"]  # stays on the host (pack_padded_sequence)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    x, mask = moved["x"], moved["mask"]
    via_idx = encode_valid_frames(enc, x, mask, moved["valid_idx"])
    old = torch.zeros(3, 3, 5)
    old[mask] = enc(x[mask])  # the boolean-mask version it replaces
    assert torch.equal(via_idx, old)


@pytest.mark.parametrize("width, dim", [(0.0625, 32), (1.0, 512)])
def test_vgg16_exports_the_pooled_map_not_the_head_input(width: float, dim: int) -> None:
    net = build_model("vgg16", weights=None, width_mult=width, pool=7, hidden=8).eval()
    with torch.no_grad():
        out = net({"x": torch.randn(2, 3, 224 if width == 1.0 else 64, 224 if width == 1.0
                                    else 64)})
    assert out["embedding"].shape == (2, dim)  # not dim * 49 (25,088 at full width)
    assert net.head.emotion[0].in_features == dim * 49  # the study's FC head is unchanged


def test_clip_means_accumulated_per_batch_equal_the_mean_of_all_items() -> None:
    ds = frames(12, split="dev", per_clip=3)
    seed_everything(0)
    net = build_model("cnn5", base_width=4, hidden=8)
    res = predict_mod.collect_outputs(net, ds, CPU, batch_size=5)  # batches straddle clips
    assert "embedding" not in res  # per-item embeddings are never kept
    with torch.no_grad():
        items = net(predict_mod.to_device(ds.collate([ds[i] for i in range(12)]), CPU))
    _, inv = predict_mod._group(list(ds.clip_names))
    want = predict_mod.mean_by_clip(items["embedding"].numpy(), inv, 4)
    np.testing.assert_array_equal(res["clip_embedding"], want)


def test_dev_predictions_are_the_scores_that_chose_the_best_epoch(tmp_path: Path) -> None:
    """Prediction takes the engine's batch size and amp: its dev F1 is the logged one."""
    seed_everything(0)
    net = build_model("cnn5", base_width=4, hidden=8)
    train_ds, dev_ds = frames(12), frames(12, split="dev")
    s = engine.train(net, train_ds, dev_ds, tmp_path, seed=0, **{**KW, "batch_size": 5})
    opts = predict_mod.eval_options(EngineSettings(batch_size=5, device="cpu"), 0)
    df = predict_mod.predict(net, dev_ds, **opts)
    pred = df.filter(like="p_emotion_").to_numpy().argmax(1)
    true = np.array([EMOTIONS.index(e) for e in df["emotion"]])
    assert engine.weighted_f1(true, pred, 7) == s["best_dev_emotion_wf1"]


# ------------------------------------------------------------------ 5. reproducible pooling, RNG


@pytest.mark.parametrize("shape", [(2, 8, 1, 1), (2, 8, 3, 5), (4, 16, 7, 7), (2, 4, 14, 14),
                                   (2, 4, 28, 21), (2, 4, 9, 9)])
def test_spatial_pool_equals_adaptive_pooling_on_cpu(shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape)
    assert torch.equal(spatial_pool(x, 1), nn.AdaptiveAvgPool2d(1)(x))
    assert torch.equal(spatial_pool(x, 7), nn.AdaptiveAvgPool2d(7)(x))
    if shape[-2:] == (7, 7):
        assert spatial_pool(x, 7) is x  # identity: no pooling kernel at all


def test_models_use_no_adaptive_pooling_module() -> None:
    for name, params in (("cnn5", {"base_width": 4}),
                         ("vgg16", {"weights": None, "width_mult": 0.0625}),
                         ("video_branch", {"weights": None, "width_mult": 0.0625}),
                         ("temporal_video", {"base_width": 4})):
        net = build_model(name, **params)
        assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.modules()), name


def test_strict_determinism_except_for_a_declared_op(monkeypatch: pytest.MonkeyPatch) -> None:
    from avemo.fusion.models import CrossAttention
    from avemo.training.seed import deterministic_mode, nondeterministic_ops

    cuda = torch.device("cuda")
    assert nondeterministic_ops(nn.Linear(1, 1), cuda) is None
    assert "MultiheadAttention" in str(nondeterministic_ops(CrossAttention(), cuda))
    assert nondeterministic_ops(CrossAttention(), CPU) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # was warn_only on CUDA
    with deterministic_mode(0):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with deterministic_mode(0, warn_only=True):
        assert torch.is_deterministic_algorithms_warn_only_enabled()


class _FakeCuda:
    """One visible device (the resumed job's node) where the saving node had two."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = torch.arange(16, dtype=torch.uint8)
        self.set: list[torch.Tensor] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": self.state)
        monkeypatch.setattr(torch.cuda, "set_rng_state",
                            lambda s, device="cuda": self.set.append(s))

        def all_devices(*_: Any) -> None:
            raise RuntimeError("CUDA error: invalid device ordinal")

        monkeypatch.setattr(torch.cuda, "get_rng_state_all", all_devices)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", all_devices)


def test_rng_state_is_the_current_devices_only(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeCuda(monkeypatch)
    state = checkpoint.get_rng_state()
    assert torch.equal(state["cuda"], fake.state)
    checkpoint.set_rng_state(state)
    assert len(fake.set) == 1 and torch.equal(fake.set[0], fake.state)
    # A checkpoint of the old format (every device's state) restores on a one-GPU node.
    old = {**state, "cuda": [fake.state + 1, fake.state + 2]}
    checkpoint.set_rng_state(old)
    assert torch.equal(fake.set[-1], fake.state + 1)


# ------------------------------------------------------------------ 6. provenance


def test_summary_records_what_the_run_ran_on(tmp_path: Path) -> None:
    seed_everything(0)
    s = engine.train(build_model("cnn5", base_width=4, hidden=8), frames(6),
                     frames(6, split="dev"), tmp_path, seed=0, **KW)
    assert s["device"] == "cpu" and s["amp_dtype"] is None and s["cudnn_version"] is None
    assert s["device_name"] and s["torch_version"] == torch.__version__
    assert s["deterministic"] is True and s["nondeterministic_ops"] is None


def test_cuda_facts_are_the_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from avemo.training.provenance import run_facts

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    facts = run_facts(torch.device("cuda"), torch.bfloat16, nn.Linear(1, 1), None)
    assert facts["device_name"] == "NVIDIA H100 80GB HBM3"
    assert facts["amp_dtype"] == "bfloat16" and facts["cudnn_version"] == 91002


def test_report_hardware_line_comes_from_the_training_summaries(tmp_path: Path) -> None:
    """The report job runs on a CPU node: its hardware line names where training ran."""
    import json

    from avemo.report import provenance
    from avemo.report.build import provenance_section

    gpu = {"device": "cuda", "device_name": "NVIDIA A100-SXM4-80GB", "amp_dtype": "bfloat16",
           "cudnn_version": 90100, "cuda_version": "12.8", "nondeterministic_ops": None}
    files: dict[str, dict[str, Path]] = {}
    for model, seeds, extra in (("vgg16", 3, {}), ("cross_attention", 1,
                                {"nondeterministic_ops": "nn.MultiheadAttention backward"})):
        for seed in range(seeds):
            path = tmp_path / f"{model}{seed}.json"
            path.write_text(json.dumps({**gpu, **extra}))
            files.setdefault(model, {})[str(seed)] = path
    runs = provenance.read_summaries(files)
    line = provenance.training_hardware(runs)
    assert line == "NVIDIA A100-SXM4-80GB (CUDA 12.8, cuDNN 90100, bfloat16): 4 runs"
    notes = provenance.nondeterminism_notes(runs)
    assert len(notes) == 1 and notes[0].startswith("`cross_attention` was trained with nn.Multi")
    bench = tmp_path / "bench"
    bench.mkdir()
    text = " ".join(provenance_section(bench, {"dataset": "meld"}, "h", files).paragraphs)
    assert "Training hardware (from the training summaries): NVIDIA A100" in text
    assert "no deterministic CUDA kernel" in text
    cpu = provenance.training_hardware([{"device": "cpu", "device_name": "x86_64"}])
    assert cpu == "x86_64 (CPU, fp32): 1 run"


def _meld_config(**vgg16_params: Any) -> dict[str, Any]:
    from avemo.config import validate_config

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    overlay = yaml.safe_load((REPO / "workflow" / "presets" / "meld.yaml").read_text())

    def merge(a: Any, b: Any) -> Any:
        for k, v in b.items():
            a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    cfg = validate_config(merge(base, overlay))
    cfg["train"]["models"]["vgg16"]["params"].update(vgg16_params)
    return cfg


def test_the_run_start_knows_which_weights_the_models_need() -> None:
    from avemo import pretrained
    from avemo.config import load_config

    assert pretrained.needed(load_config(REPO / "config.yaml")) == {}  # the demo: none
    assert pretrained.needed(_meld_config()) == {"IMAGENET1K_V1": "error"}
    # scratch only when every model asking for them accepts it
    assert pretrained.needed(_meld_config(on_missing_weights="scratch")) == {
        "IMAGENET1K_V1": "error"}
    cfg = _meld_config(on_missing_weights="scratch")
    cfg["train"]["models"]["video_branch"]["params"]["on_missing_weights"] = "scratch"
    assert pretrained.needed(cfg) == {"IMAGENET1K_V1": "scratch"}
    # In the onstart block (the run's start, before any job), not in another handler.
    text = (REPO / "Snakefile").read_text()
    onstart = text.split("\nonstart:\n", 1)[1].split("\n\n\n", 1)[0]
    assert "pretrained.prefetch(config)" in onstart
    assert text.count("pretrained.prefetch(config)") == 1


def test_the_run_start_fills_the_cache_or_stops_before_the_queue(hub: Path) -> None:
    from avemo import pretrained

    with pytest.raises(TrainingError, match="make weights|internet"):
        pretrained.prefetch(_meld_config())  # offline, empty cache, weights required
    cfg = _meld_config(on_missing_weights="scratch")
    cfg["train"]["models"]["video_branch"]["params"]["on_missing_weights"] = "scratch"
    said: list[str] = []
    assert pretrained.prefetch(cfg, log=said.append) == [] and "scratch" in said[0]
    path = fill_cache()
    assert pretrained.prefetch(_meld_config(), log=said.append) == [str(path)]


def test_the_vgg_models_ask_for_channels_last() -> None:
    """The engine converts these (conv weights and frames) to NHWC on CUDA only."""
    for name in ("vgg16", "video_branch"):
        assert build_model(name, weights=None, width_mult=0.0625).channels_last is True
    assert not getattr(build_model("cnn5", base_width=4), "channels_last", False)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert predict_mod.to_device({"x": x}, CPU, channels_last=True)["x"].is_contiguous()
