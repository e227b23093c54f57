"""The early-fusion training stage: one fusion model, one seed, from stage files to predictions.

Writes into ``out_dir`` (docs/formats.md section 5, ``fusion/{model}/seed{n}/``): ``best.pt``,
``last.pt``, ``log.csv`` (the engine), ``predictions_dev.parquet``, ``predictions_test.parquet``,
the modality ablations ``predictions_test_no_audio.parquet`` / ``predictions_test_no_video
.parquet`` (the trained model on test with that modality masked for every clip) and
``summary.json``. Clips without usable audio are scored with audio masked (never dropped); the
report splits them out with the audio stage's mask. Model selection sees train and dev only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avemo import registry
from avemo.atomic import atomic_path, write_json
from avemo.errors import TrainingError
from avemo.fusion.inputs import FusionDataset, build_fusion_dataset
from avemo.heap import trim_heap
from avemo.labels import SPLITS
from avemo.models.registry import build_model
from avemo.training.engine import fit
from avemo.training.predict import eval_options, predict, resolve_device
from avemo.training.seed import seed_everything
from avemo.training.settings import EngineSettings
from avemo.training.stage import _fresh_start_if_config_changed

PathLike = str | os.PathLike[str]


def build_fusion_model(name: str, **params: Any) -> nn.Module:
    """A registered early-fusion model by name."""
    return build_model(name, "early_fusion", **params)


def _factors_of(name: str) -> dict[str, str]:
    return dict(registry.get(name).factors)


def _write_predictions(model: nn.Module, ds: FusionDataset, path: Path,
                       opts: dict[str, Any]) -> None:
    df = predict(model, ds, **opts)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    trim_heap()


@torch.no_grad()
def _mean_gate(model: nn.Module, ds: FusionDataset) -> float | None:
    """Mean learned gate (1 = video only) over test clips that have audio, for the gated model."""
    if not hasattr(model, "gate"):
        return None
    model.eval().cpu()
    keep = [i for i in range(len(ds)) if ds.audio_present[i]]
    if not keep:
        return None
    return float(model(ds.collate(keep))["gate"].mean())


def train_fusion(
    model_name: str,
    seed: int,
    manifests: dict[str, PathLike],
    video_utt: dict[str, PathLike],
    audio_dirs: dict[str, PathLike],
    out_dir: PathLike,
    *,
    video_dense: dict[str, PathLike] | None = None,
    aligned_dirs: dict[str, PathLike] | None = None,
    frames_dense: dict[str, PathLike] | None = None,
    engine: dict[str, Any],
    model_params: dict[str, Any],
    config_hash: str,
    window_pool: int = 5,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Train early-fusion ``model_name`` with ``seed`` into ``out_dir``; every dict maps split
    (train/dev/test) -> path.

    ``manifests``: ``manifest/{split}.parquet``; ``video_utt``: the video model's embeddings on
    the sparse (study) frames, ``embeddings_{split}@study.npz``; ``audio_dirs``:
    ``audio/{split}`` (utterance vectors + mask).
    The model's factor levels (its registry entry, avemo.diagnosis) decide what it reads;
    every level but the study's sparse/clip inputs also needs ``video_dense`` (the
    dense-frame npz) and ``aligned_dirs`` (windows centred on the dense frames; an AudioStore
    folder or one holding ``aligned.npy`` + ``aligned_index.parquet``); ``window_pool``: time
    segments each window is averaged to; ``frames_dense``: the dense frame set's frames
    outputs (frame activity), needed with ``activity=on``. ``engine``: engine settings
    (``EngineSettings`` fields, missing ones take the schema defaults; ``w_sentiment=0``
    gives single-task);
    ``model_params``: constructor keywords (input widths are filled in from the data).
    Returns the summary also written to ``summary.json``.
    """
    t0 = time.perf_counter()
    factors = _factors_of(model_name)
    inputs = str(registry.get(model_name).fusion_inputs)
    settings = EngineSettings.from_mapping(
        engine, where=f"{model_name}'s engine (train.engine, fusion.engine, fusion.models)")
    needed = {"manifests": manifests, "video_utt": video_utt, "audio_dirs": audio_dirs}
    if (factors["video"], factors["audio"]) != ("sparse", "clip"):
        needed.update(video_dense=video_dense or {}, aligned_dirs=aligned_dirs or {})
    if factors["activity"] == "on":
        needed["frames_dense"] = frames_dense or {}
    for what, files in needed.items():
        missing = [s for s in SPLITS if s not in files]
        if missing:
            raise TrainingError(f"{model_name}: {what} lacks splits {missing}")
    resolve_device(settings.device)  # device: cuda without a GPU fails here, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def dataset(split: str) -> FusionDataset:
        return build_fusion_dataset(
            split,
            inputs,
            manifests[split],
            video_utt[split],
            audio_dirs[split],
            video_dense=(video_dense or {}).get(split),
            aligned_dir=(aligned_dirs or {}).get(split),
            window_pool=window_pool,
            video=factors["video"],
            audio=factors["audio"],
            shuffle_seed=seed if factors["alignment"] == "shuffled" else None,
            activity_dir=(frames_dense or {}).get(split) if factors["activity"] == "on"
            else None,
        )

    data = {s: dataset(s) for s in SPLITS}
    trim_heap()  # after each phase: its freed temporaries would otherwise stay resident
    seed_everything(seed)
    net = build_fusion_model(model_name, **{**data["train"].dims(), **model_params,
                                            "scaling": factors["scaling"] == "on"})
    _fresh_start_if_config_changed(out, config_hash)
    result = fit(
        net,
        data["train"],
        data["dev"],
        out,
        settings,
        seed=seed,
        config_hash=config_hash,
        num_workers=num_workers,
    )
    trim_heap()
    opts = eval_options(settings, num_workers)
    for split in ("dev", "test"):
        _write_predictions(net, data[split], out / f"predictions_{split}.parquet", opts)
    for modality in ("audio", "video"):
        _write_predictions(
            net,
            data["test"].without(modality),
            out / f"predictions_test_no_{modality}.parquet",
            opts,
        )
    summary = {
        "model": model_name,
        "seed": seed,
        "config_hash": config_hash,
        "inputs": inputs,
        "factors": factors,
        "dims": data["train"].dims(),
        "window_pool": window_pool,
        **{f"n_{s}": len(d) for s, d in data.items()},
        **{f"n_{s}_missing_audio": int((~d.audio_present).sum()) for s, d in data.items()},
        "test_mean_gate": _mean_gate(net, data["test"]),
        "seconds": round(time.perf_counter() - t0, 2),
        **result,
    }
    write_json(out / "summary.json", summary)
    return summary
