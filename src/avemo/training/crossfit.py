"""Cross-fitted (out-of-fold) train-split embeddings of a video model, for early fusion.

The video model that exports the train split's embeddings was fitted on those very clips, so
its train embeddings are cleaner than its dev/test ones and a fusion model trained on them
learns to trust video more than it should (in-sample stacking). Here the train split is cut
into K folds grouped by dialogue (a dialogue's utterances share speakers and scene; fewer
when the split has fewer dialogues, by utterance on a one-dialogue toy split) and, for
each fold, a model trained by the one engine on the other folds (selected on dev, like the full
model) exports the held-out fold's embeddings on every frame set. Each fold model has its own
embedding coordinates, so its exports are mapped into the full model's (the one whose dev and
test embeddings the fusion reads): an affine map fitted on the clips the fold model was trained
on, against the full model's embeddings of them (avemo.training.embedding_map). The K mapped
exports make one ``embeddings_train@{set}.npz`` per frame set, in the stream stage's format
(docs/formats.md section 5), clips in the train manifest's order.

Each fold trains in ``out_dir/fold{k}/`` with its own checkpoints: a killed job resumes the
fold it was in (the engine's resume) and skips finished folds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import TrainingError
from ..folds import out_of_fold_folds
from ..heap import trim_heap
from ..layout import embeddings_name
from ..manifest import read_manifest, usable
from ..models.registry import MODELS
from .embedding_map import fit_affine, map_export, paired_rows, r2_score
from .engine import fit
from .inputs import SplitFiles, build_dataset
from .predict import eval_options, export_embeddings, resolve_device
from .seed import seed_everything
from .settings import EngineSettings
from .stage import _fresh_start_if_config_changed, build_resumable

DONE = "done.json"


def fit_export_name(frame_set: str) -> str:
    """A fold model's export of the clips it was trained on (the map's fitting rows)."""
    return f"fit@{frame_set}.npz"


def _concat(parts: list[dict[str, np.ndarray]], order: list[str]) -> dict[str, np.ndarray]:
    """Join the folds' exports (each an embeddings npz as arrays) in ``order`` of clips."""
    names = np.concatenate([p["clip_name"] for p in parts])
    pos = {n: i for i, n in enumerate(names)}
    idx = np.array([pos[n] for n in order if n in pos], dtype=np.int64)
    out = {"clip_name": names[idx], "emb": np.concatenate([p["emb"] for p in parts])[idx]}
    if all("seq" in p for p in parts):
        t_max = max(p["seq"].shape[1] for p in parts)
        seq = np.concatenate([np.pad(p["seq"], ((0, 0), (0, t_max - p["seq"].shape[1]),
                                                (0, 0))) for p in parts])
        t_s = np.concatenate([np.pad(p["t_s"], ((0, 0), (0, t_max - p["t_s"].shape[1])),
                                     constant_values=np.nan) for p in parts])
        lengths = np.concatenate([p["lengths"] for p in parts])
        out.update(seq=seq[idx], t_s=t_s[idx], lengths=lengths[idx])
    return out


def _read(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def cross_fit(model: str, seed: int, splits: dict[str, SplitFiles],
              frame_sets: dict[str, Path], out_dir: str | Path, *, folds: int,
              full_embeddings: dict[str, Path], engine: dict[str, Any],
              model_params: dict[str, Any], config_hash: str, max_len: int | None = None,
              num_workers: int = 0) -> dict[str, Any]:
    """Write ``out_dir/embeddings_train@{set}.npz`` (out of fold) for every frame set.

    ``splits``: the model's own frame set's ``train`` and ``dev`` files; ``frame_sets``:
    ``{set: frames/{set}/train}`` for every set to export (the own set included);
    ``full_embeddings``: ``{set: the full model's embeddings_train@{set}.npz}`` (the
    coordinates the exports are mapped into). ``engine``, ``model_params``, ``max_len``: as
    the full model's training (``train_stream``). Returns the summary also written to
    ``out_dir/summary.json``.
    """
    missing = sorted(set(frame_sets) - set(full_embeddings))
    if missing:
        raise TrainingError(f"cross-fitting {model}: no full-model train embeddings for frame "
                            f"set(s) {missing}; the crossfit rule must declare them")
    if model not in MODELS or MODELS[model].input_kind not in ("frame", "frame_seq"):
        raise TrainingError(f"cross-fitting exports a visual model's embeddings; {model!r} "
                            "is not one: fix fusion.video_model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    kind = MODELS[model].input_kind
    settings = EngineSettings.from_mapping(
        engine, where=f"{model}'s engine (train.engine, train.models.{model}.engine)")
    resolve_device(settings.device)  # device: cuda without a GPU fails here, before any work
    train = splits["train"]
    names = usable(read_manifest(train.manifest))["clip_name"].astype(str).tolist()
    fold, how = out_of_fold_folds(names, folds, seed)
    folds = int(fold.max()) + 1
    dev_ds = build_dataset(kind, splits["dev"], max_len=max_len)
    runs: list[dict[str, Any]] = []
    for k in range(folds):
        fold_dir = out / f"fold{k}"
        fold_dir.mkdir(exist_ok=True)
        held = frozenset(n for n, f in zip(names, fold, strict=True) if f == k)
        done = fold_dir / DONE
        if done.is_file() and _same_run(done, config_hash, held) and all(
                (fold_dir / n).is_file() for f in frame_sets
                for n in (embeddings_name("train", f), fit_export_name(f))):
            runs.append(_load_json(done))
            continue
        fit_files = SplitFiles("train", train.manifest, frames=train.frames,
                               clips=frozenset(names) - held)
        train_ds = build_dataset(kind, fit_files, augment=True, max_len=max_len)
        seed_everything(seed * 1000 + k)
        _fresh_start_if_config_changed(fold_dir, config_hash)
        net = build_resumable(model, fold_dir, model_params)
        result = fit(net, train_ds, dev_ds, fold_dir, settings, seed=seed * 1000 + k,
                     config_hash=config_hash, num_workers=num_workers)
        trim_heap()  # after each phase: its freed temporaries would otherwise stay resident
        for fset, frames in frame_sets.items():
            for clips, name in ((held, embeddings_name("train", fset)),
                                (frozenset(names) - held, fit_export_name(fset))):
                files = SplitFiles("train", train.manifest, frames=frames, clips=clips)
                export_embeddings(net, build_dataset(kind, files, max_len=max_len),
                                  fold_dir / name, **eval_options(settings, num_workers))
                trim_heap()
        run = {"fold": k, "n_fit": len(names) - len(held), "n_held": len(held),
               "config_hash": config_hash, "held_digest": _digest(held),
               "best_epoch": result.get("best_epoch"),
               "best_dev_emotion_wf1": result.get("best_dev_emotion_wf1")}
        write_json(done, run)
        runs.append(run)
    full = {f: _read(Path(full_embeddings[f])) for f in frame_sets}
    mapped = []
    for k, run in enumerate(runs):
        quality, exports = _map_fold(out / f"fold{k}", frame_sets, full)
        run.update(quality)
        mapped.append(exports)
    for fset in frame_sets:
        parts = [mapped[k][fset] for k in range(folds)]
        with atomic_path(out / embeddings_name("train", fset)) as tmp:
            np.savez(tmp, **_concat(parts, names))
    for k in range(folds):  # the fold models served their purpose: keep the logs only
        for ckpt in ("best.pt", "last.pt"):
            (out / f"fold{k}" / ckpt).unlink(missing_ok=True)
    summary = {"model": model, "seed": seed, "config_hash": config_hash, "folds": folds,
               "how": how, "n_train": len(names), "runs": runs,
               "seconds": round(time.perf_counter() - t0, 2)}
    write_json(out / "summary.json", summary)
    return summary


def _map_fold(fold_dir: Path, frame_sets: dict[str, Path], full: dict[str, dict[str, np.ndarray]]
              ) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Map one fold's held-out exports into the full model's coordinates (per frame set).

    One map per fold, fitted on every frame set's rows of the clips the fold model trained on.
    Returns its quality (``map_r2_fit`` on those rows, ``map_r2_held`` of the mapped held-out
    clips against the full model's (in-sample) embeddings of them, lower by design) and the
    mapped exports.
    """
    fit_rows = [paired_rows(_read(fold_dir / fit_export_name(f)), full[f]) for f in frame_sets]
    x = np.concatenate([r[0] for r in fit_rows])
    y = np.concatenate([r[1] for r in fit_rows])
    if len(x) == 0:
        raise TrainingError(f"{fold_dir}: the fold model's training clips have no full-model "
                            "embeddings to fit the map on; rerun the video model's training")
    fmap = fit_affine(x, y)
    exports = {f: map_export(_read(fold_dir / embeddings_name("train", f)), fmap)
               for f in frame_sets}
    held = [paired_rows(exports[f], full[f]) for f in frame_sets]
    hx, hy = np.concatenate([r[0] for r in held]), np.concatenate([r[1] for r in held])
    quality = {"map_r2_fit": round(fmap.r2, 4),
               "map_r2_held": round(r2_score(hy, hx), 4) if len(hx) else None}
    return quality, exports


def _digest(clips: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(clips)).encode()).hexdigest()[:16]


def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _same_run(done: Path, config_hash: str, held: frozenset[str]) -> bool:
    try:
        run = _load_json(done)
    except (OSError, ValueError):
        return False
    return run.get("config_hash") == config_hash and run.get("held_digest") == _digest(held)
