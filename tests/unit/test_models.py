"""Models: shapes, one-batch overfit, masking, registry and VGG-16 weight handling."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest
import torch
from conftest import overfit_losses

from avemo.errors import TrainingError
from avemo.models import MODELS, build_model
from avemo.models.heads import DualHead

B = 8
TINY: dict[str, dict[str, Any]] = {
    "cnn5": {"base_width": 8, "dropout": 0.0},
    "vgg16": {"weights": None, "width_mult": 0.125, "pool": 1, "hidden": 32, "dropout": 0.0},
    "video_branch": {"weights": None, "width_mult": 0.125, "dropout": 0.0},
    "temporal_video": {"base_width": 4, "rnn_hidden": 16, "hidden": 32, "dropout": 0.0},
    "audio_mlp": {"in_dim": 192, "width": 64, "dropout": 0.0},
    "audio_cnn": {"in_dim": 16, "channels": 32, "dropout": 0.0},
}


def make_batch(kind: str, lengths: list[int] | None = None, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [3] * B
    n, t = len(lengths), max(lengths)
    batch: dict[str, Any] = {
        "emotion": torch.arange(n) % 7,
        "sentiment": torch.arange(n) % 3,
        "clip_name": [f"dia0_utt{i}" for i in range(n)],
    }
    if kind == "frame":
        batch["x"] = torch.randn(n, 3, 32, 32, generator=g)
    elif kind == "audio_vec":
        batch["x"] = torch.randn(n, 192, generator=g)
    else:
        shape = (n, t, 3, 32, 32) if kind == "frame_seq" else (n, t, 16)
        x = torch.randn(*shape, generator=g)
        mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
        batch.update(x=x * mask.view(n, t, *[1] * (x.dim() - 2)), mask=mask)
        batch["lengths"] = torch.tensor(lengths)
    return batch


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **TINY[name]).eval()
    out = model(make_batch(MODELS[name].input_kind))
    assert out["emotion"].shape == (B, 7)
    assert out["sentiment"].shape == (B, 3)
    assert out["embedding"].shape[0] == B and out["embedding"].dim() == 2
    assert model.model_name == name


def test_video_branch_embedding_is_100d() -> None:
    model = build_model("video_branch", **TINY["video_branch"]).eval()
    out = model(make_batch("frame_seq"))
    assert out["embedding"].shape == (B, 100)
    assert out["seq"].shape == (B, 3, 100)


# The VGG stacks and the temporal model take most of the unit tier's time: `make test` runs
# them, `make test-fast` (-m "not slow") leaves them out.
HEAVY = {"vgg16", "video_branch", "temporal_video"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in sorted(MODELS)])
def test_one_batch_overfit(name: str) -> None:
    torch.manual_seed(0)
    # VGG stacks as the demo trains them from scratch: with BatchNorm. The plain stack (meant
    # for ImageNet weights) diverges or stalls from a random init within 40 steps, depending on
    # the seed and the CPU's kernels, which made this test flaky.
    extra = {"batch_norm": True} if name in ("vgg16", "video_branch") else {}
    model = build_model(name, **TINY[name], **extra).train()
    batch = make_batch(MODELS[name].input_kind, lengths=[3, 2, 3, 1, 2, 3, 3, 2])
    losses = overfit_losses(model, batch, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses[::5]


SEQ_CASES = [
    ("video_branch", {}),
    ("temporal_video", {}),
    ("temporal_video", {"pooling": "mean"}),
    ("temporal_video", {"temporal": "none"}),
    ("temporal_video", {"in_dim": 16}),  # precomputed per-frame features
    ("audio_cnn", {}),
]


@pytest.mark.parametrize(("name", "extra"), SEQ_CASES)
def test_padded_equals_unpadded(name: str, extra: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = build_model(name, **{**TINY[name], **extra}).eval()
    kind = "audio_seq" if extra.get("in_dim") else MODELS[name].input_kind
    lengths = [5, 2, 4, 1]
    batch = make_batch(kind, lengths=lengths)
    with torch.no_grad():
        padded = model(batch)
        for i, n in enumerate(lengths):
            single = {"x": batch["x"][i : i + 1, :n], "mask": batch["mask"][i : i + 1, :n]}
            alone = model(single)
            for key in ("emotion", "sentiment", "embedding"):
                torch.testing.assert_close(padded[key][i], alone[key][0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(padded["seq"][i, :n], alone["seq"][0], atol=1e-5, rtol=1e-4)


def test_padding_content_is_ignored() -> None:
    """Garbage in padded steps must not change anything."""
    model = build_model("audio_cnn", **TINY["audio_cnn"]).eval()
    batch = make_batch("audio_seq", lengths=[4, 2])
    noisy = {**batch, "x": batch["x"] + 100.0 * (~batch["mask"]).unsqueeze(-1)}
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["emotion"], model(noisy)["emotion"])


def test_registry_unknown_name() -> None:
    with pytest.raises(TrainingError, match=r"unknown model 'resnet'.*cnn5.*train\.models"):
        build_model("resnet")


def test_registry_bad_param() -> None:
    with pytest.raises(TrainingError, match="bad parameters for model 'cnn5'"):
        build_model("cnn5", no_such_param=1)


def test_dual_head_linear_probe() -> None:
    out = DualHead(10, hidden=0, dropout=0.0)(torch.randn(2, 10))
    assert out["emotion"].shape == (2, 7) and out["sentiment"].shape == (2, 3)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No network and an empty torch hub cache."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def fail(*_: Any, **__: Any) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    return tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"


@pytest.mark.parametrize("name", ["vgg16", "video_branch"])
def test_vgg_offline_weights_error_names_cache_path(name: str, offline: Any) -> None:
    with pytest.raises(TrainingError) as err:
        build_model(name, weights="IMAGENET1K_V1")
    msg = str(err.value)
    assert str(offline) in msg and "vgg16-397923af.pth" in msg and "on_missing_weights" in msg


def test_vgg_offline_scratch_fallback(offline: Any) -> None:
    model = build_model("vgg16", weights="IMAGENET1K_V1", on_missing_weights="scratch", pool=1)
    assert model.weights_used == "none (scratch: IMAGENET1K_V1 unavailable)"
    assert build_model("vgg16", **TINY["vgg16"]).weights_used == "none"


def test_vgg_loads_weights_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for the cached file: every features.* tensor is loaded."""
    ref = build_model("vgg16", weights=None, pool=1).features.state_dict()
    fake = {f"features.{k}": torch.full_like(v, 0.5) for k, v in ref.items()}
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: fake)
    model = build_model("vgg16", weights="IMAGENET1K_V1", pool=1, frozen_blocks=2)
    assert model.weights_used == "IMAGENET1K_V1"
    assert torch.all(model.features[0].weight == 0.5)
    # Blocks 1-2 are conv layers 0,2,5,7: frozen; block 3 (conv 10) trains.
    assert not model.features[7].weight.requires_grad
    assert model.features[10].weight.requires_grad


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_layers_equal_torchvision(batch_norm: bool) -> None:
    """The local make_layers (no torchvision import) builds torchvision's modules in its order,
    so the same seed gives the same weights and ImageNet state dicts load unchanged."""
    from torchvision.models.vgg import cfgs
    from torchvision.models.vgg import make_layers as tv_make_layers

    from avemo.models.vgg_backbone import VGG16_CFG, make_layers, scaled_cfg

    assert cfgs["D"] == VGG16_CFG
    cfg = scaled_cfg(0.25)
    torch.manual_seed(0)
    ref = tv_make_layers(cfg, batch_norm=batch_norm)
    torch.manual_seed(0)
    ours = make_layers(cfg, batch_norm=batch_norm)
    assert str(ours) == str(ref)
    a, b = ref.state_dict(), ours.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_vgg_bad_options() -> None:
    with pytest.raises(TrainingError, match="width_mult"):
        build_model("vgg16", weights="IMAGENET1K_V1", width_mult=0.5)
    with pytest.raises(TrainingError, match="frozen_blocks"):
        build_model("vgg16", weights=None, frozen_blocks=6)


def test_vgg_batch_norm_option_is_from_scratch_only():
    from avemo.models.vgg16 import VGG16

    net = VGG16(weights=None, width_mult=0.125, batch_norm=True, pool=1)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d)
                   for m in VGG16(weights=None, width_mult=0.125, pool=1).modules())
    with pytest.raises(TrainingError, match="batch_norm"):
        VGG16(weights="IMAGENET1K_V1", batch_norm=True)


def test_meld_preset_is_a_valid_overlay(repo):
    import yaml

    from avemo.config import validate_config

    base = yaml.safe_load((repo / "config.yaml").read_text())
    overlay = yaml.safe_load((repo / "workflow" / "presets" / "meld.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    cfg = validate_config(merge(base, overlay))
    assert cfg["frames"]["size"] == 224
    assert cfg["train"]["models"]["vgg16"]["params"]["weights"] == "IMAGENET1K_V1"
