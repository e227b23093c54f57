"""The per-stream training stage: one model, one seed, from stage files to predictions.

Writes into ``out_dir`` (docs/formats.md section 5): ``best.pt``/``last.pt``/``live/`` (the
engine), ``predictions_{dev,test}.parquet``, ``embeddings_{split}.npz`` (frame models also
``embeddings_{split}@{frame_set}.npz`` for every other frame set, so fusion can use per-frame
embeddings of a denser sampling) and ``summary.json``. Model selection sees train and dev only;
the test split is read after training, for prediction.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path, write_json
from ..errors import TrainingError
from ..heap import trim_heap
from ..layout import embeddings_name
from ..models.registry import MODELS, build_model
from ..models.vgg_backbone import pretrained_weights
from .engine import fit
from .inputs import SplitFiles, build_dataset
from .predict import eval_options, export_embeddings, predict, resolve_device
from .seed import seed_everything
from .settings import EngineSettings


def _fresh_start_if_config_changed(out_dir: Path, config_hash: str) -> None:
    """The workflow reruns a training job when its params change; the engine refuses to resume
    a checkpoint of another config, so remove such a checkpoint (useless now, and it would be
    versioned with the new results) and start fresh."""
    last = out_dir / "last.pt"
    if last.exists():
        try:
            old = str(torch.load(last, map_location="cpu", weights_only=True)["config_hash"])
        except Exception:  # unreadable or foreign: unusable for resuming either way
            old = "unreadable"
        if old != config_hash:
            for stale in ("last.pt", "best.pt"):  # the epoch log restarts with them
                (out_dir / stale).unlink(missing_ok=True)
            print(f"{last}: checkpoint of another config ({old}); starting fresh", flush=True)


def build_resumable(name: str, out_dir: Path, model_params: dict[str, Any], *kinds: str
                    ) -> torch.nn.Module:
    """``build_model``, but a run that will resume from ``out_dir/last.pt`` loads no pretrained
    weights: the checkpoint overwrites them, and a compute node may have no internet. The
    model's ``weights_used`` then comes from the checkpoint (the engine's restore)."""
    resuming = (Path(out_dir) / "last.pt").exists()
    with pretrained_weights(not resuming):
        return build_model(name, *kinds, **model_params)


def train_stream(model: str, seed: int, splits: dict[str, SplitFiles], out_dir: str | Path,
                 *, engine: dict[str, Any], model_params: dict[str, Any], config_hash: str,
                 features: str = "utterance", max_len: int | None = None,
                 frame_set: str | None = None,
                 extra_frame_sets: dict[str, dict[str, Path]] | None = None,
                 num_workers: int = 0) -> dict[str, Any]:
    """Train ``model`` with ``seed`` on ``splits['train']``, select on ``splits['dev']``, then
    write predictions for dev and test and embeddings for every split (visual models: on
    their own ``frame_set`` and on each of ``extra_frame_sets``). ``engine``: engine
    settings (``EngineSettings`` fields; missing ones take the schema defaults)."""
    if model not in MODELS:
        raise TrainingError(f"unknown model {model!r} (known: {', '.join(MODELS)}); "
                            f"fix train.models in config.yaml")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = MODELS[model].input_kind
    t0 = time.perf_counter()
    settings = EngineSettings.from_mapping(
        engine, where=f"{model}'s engine (train.engine, train.models.{model}.engine)")

    def dataset(split: str, augment: bool = False, files: SplitFiles | None = None):
        return build_dataset(kind, files or splits[split], features=features, augment=augment,
                             max_len=max_len)

    resolve_device(settings.device)  # device: cuda without a GPU fails here, before any work
    train_ds, dev_ds = dataset("train", augment=True), dataset("dev")
    seed_everything(seed)
    _fresh_start_if_config_changed(out, config_hash)
    net = build_resumable(model, out, model_params)
    result = fit(net, train_ds, dev_ds, out, settings, seed=seed, config_hash=config_hash,
                 num_workers=num_workers)
    trim_heap()  # after each phase: its freed temporaries would otherwise stay resident
    opts = eval_options(settings, num_workers)
    for split in ("dev", "test"):
        ds = dev_ds if split == "dev" else dataset("test")
        df = predict(net, ds, aggregate=settings.aggregate, **opts)
        with atomic_path(out / f"predictions_{split}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
        trim_heap()
    for split in ("train", "dev", "test"):
        export_embeddings(net, dataset(split), out / embeddings_name(split, frame_set), **opts)
        trim_heap()
        for fset, dirs in (extra_frame_sets or {}).items():
            files = SplitFiles(split, splits[split].manifest, frames=dirs[split])
            export_embeddings(net, dataset(split, files=files),
                              out / embeddings_name(split, fset), **opts)
            trim_heap()
    summary = {"model": model, "seed": seed, "config_hash": config_hash,
               "seconds": round(time.perf_counter() - t0, 2), **result}
    write_json(out / "summary.json", summary)
    return summary
