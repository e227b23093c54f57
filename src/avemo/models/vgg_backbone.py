"""VGG-16 convolutional features with optional ImageNet weights (shared by vgg16, video_branch).

Weights come through torchvision's URL and torch.hub's cache, so an online machine downloads
them once and an offline machine reads ``torch.hub.get_dir()/checkpoints/<file>``.

torchvision is imported only to fetch those weights: importing it costs about a second of every
job's start-up, and the layers are built here exactly as ``torchvision.models.vgg.make_layers``
builds them (same modules, order and parameter names; tests compare the two).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from avemo.errors import TrainingError

WEIGHT_CHOICES = ("IMAGENET1K_V1",)
MISSING_CHOICES = ("error", "scratch")
# torchvision.models.vgg.cfgs["D"]: conv widths, "M" = 2x2 max-pool.
VGG16_CFG: list[str | int] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                              512, 512, 512, "M", 512, 512, 512, "M"]


def scaled_cfg(width_mult: float) -> list[str | int]:
    """VGG-16's layer list ("D") with every channel count scaled (at least 4 channels)."""
    return [v if v == "M" else max(4, round(int(v) * width_mult)) for v in VGG16_CFG]


def make_layers(cfg: list[str | int], batch_norm: bool = False) -> nn.Sequential:
    """``torchvision.models.vgg.make_layers``: same modules in the same order."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


def weights_url(weights: str) -> str:
    from torchvision.models import VGG16_Weights

    return VGG16_Weights[weights].url


def weights_cache_path(weights: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_url(weights))


def load_imagenet_features(weights: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of torchvision's VGG-16 weights: read from the torch hub cache
    when the file is there (no network needed), else downloaded into it."""
    url = weights_url(weights)
    state = torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True,
                                               weights_only=True)
    return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}


def prefetch_weights(names: tuple[str, ...] = WEIGHT_CHOICES) -> list[Path]:
    """Fill the torch hub cache with ``names`` (``make weights``, on a login node with internet,
    before GPU jobs are queued on compute nodes that may have none); returns the cached files.
    A file already there is verified by loading it, not fetched again."""
    paths = []
    for name in names:
        try:
            load_imagenet_features(name)
        except Exception as exc:
            path = weights_cache_path(name)
            raise TrainingError(
                f"cannot fetch VGG-16 {name} weights into {path} ({type(exc).__name__}: {exc}); "
                f"run this where the internet is reachable, or download {weights_url(name)} "
                f"and place it at {path}"
            ) from exc
        paths.append(weights_cache_path(name))
    return paths


# Off while a model is built to resume from a checkpoint: the checkpoint's weights replace the
# pretrained ones anyway, so a resumed job neither needs the cache nor touches the network.
_PRETRAINED = contextvars.ContextVar("avemo_load_pretrained", default=True)
FROM_CHECKPOINT = "from the checkpoint"


@contextlib.contextmanager
def pretrained_weights(load: bool) -> Iterator[None]:
    """Models built inside ``with pretrained_weights(False)`` skip loading pretrained weights;
    their ``weights_used`` is :data:`FROM_CHECKPOINT` until the engine restores the
    checkpoint's own record."""
    token = _PRETRAINED.set(load)
    try:
        yield
    finally:
        _PRETRAINED.reset(token)


def build_vgg16_features(
    *,
    weights: str | None,
    on_missing_weights: str,
    width_mult: float,
    frozen_blocks: int,
    batch_norm: bool = False,
) -> tuple[nn.Sequential, int, str]:
    """Return (features, out_channels, weights_used).

    ``weights_used`` is the weights name, ``"none"`` (asked for none) or
    ``"none (scratch: <name> unavailable)"`` so the report can say what was trained.
    """
    if weights is not None and weights not in WEIGHT_CHOICES:
        raise TrainingError(
            f"unknown VGG-16 weights {weights!r}; use one of {list(WEIGHT_CHOICES)} or null "
            "in the model's params in config.yaml"
        )
    if on_missing_weights not in MISSING_CHOICES:
        raise TrainingError(
            f"on_missing_weights must be one of {list(MISSING_CHOICES)}, got {on_missing_weights!r}"
        )
    if weights is not None and width_mult != 1.0:
        raise TrainingError(
            f"pretrained VGG-16 weights need width_mult=1.0 (got {width_mult}); set "
            "weights: null for a narrow network"
        )
    if not 0 <= frozen_blocks <= 5:
        raise TrainingError(f"frozen_blocks must be within 0..5, got {frozen_blocks}")
    if batch_norm and weights is not None:
        raise TrainingError(
            "batch_norm: true is for a from-scratch VGG-16 (weights: null); the IMAGENET1K_V1 "
            "weights belong to the plain network"
        )
    cfg = scaled_cfg(width_mult)
    # The plain 13-conv VGG stays at chance loss in a short from-scratch run; BN makes it train.
    features = make_layers(cfg, batch_norm=batch_norm)
    _init_like_torchvision(features)
    weights_used = "none"
    if weights is not None and not _PRETRAINED.get():
        weights_used = FROM_CHECKPOINT  # Kaiming init above draws the same RNG either way
    elif weights is not None:
        try:
            state = load_imagenet_features(weights)
        except Exception as exc:  # offline, proxy, corrupt cache: all mean "no weights here"
            path = weights_cache_path(weights)
            if on_missing_weights == "error":
                raise TrainingError(
                    f"cannot load VGG-16 {weights} weights ({type(exc).__name__}: {exc}). "
                    f"Run `make weights` where the internet is reachable (the login node), or "
                    f"download {weights_url(weights)} and place the file {path.name} at {path}; "
                    "or set on_missing_weights: scratch in config.yaml to train from scratch"
                ) from exc
            weights_used = f"none (scratch: {weights} unavailable)"
        else:
            features.load_state_dict(state)
            weights_used = weights
    _freeze_blocks(features, frozen_blocks)
    out_channels = int([v for v in cfg if v != "M"][-1])
    return features, out_channels, weights_used


def main() -> int:
    """``python -m avemo.models.vgg_backbone``: :func:`prefetch_weights`, one line per file."""
    try:
        for path in prefetch_weights():
            print(f"VGG-16 ImageNet weights cached: {path}")
    except TrainingError as exc:
        print(f"error: {exc}")
        return 1
    return 0


def _init_like_torchvision(features: nn.Sequential) -> None:
    # make_layers leaves PyTorch's default conv init, under which 13 plain conv layers trained
    # from scratch barely learn; torchvision's VGG uses Kaiming (fan_out) init instead.
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _freeze_blocks(features: nn.Sequential, n: int) -> None:
    """Freeze the parameters of the first ``n`` conv blocks (a block ends at a max-pool)."""
    block = 0
    for layer in features:
        if block >= n:
            break
        for p in layer.parameters():
            p.requires_grad_(False)
        if isinstance(layer, nn.MaxPool2d):
            block += 1


if __name__ == "__main__":
    raise SystemExit(main())
