"""Map the validated config to each stage function's keyword arguments.

The Snakefile passes exactly these dicts to the CLI (as JSON `params`), so Snakemake's params
rerun-trigger sees a change only in the stages whose arguments really changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from .labels import SPLITS


def as_json(params: dict[str, Any]) -> str:
    """A stage's params as the canonical JSON string passed to `avemo <stage> --params`."""
    return json.dumps(params, sort_keys=True)


def parent(key: str, levels: int = 1) -> Callable[..., str]:
    """A Snakemake params function: the folder `levels` up from output `key` (derived from the
    rule's own outputs, so no path prefix is hard-coded in a rule)."""

    def folder(wildcards: Any, output: Any) -> str:
        return str(Path(getattr(output, key)).parents[levels - 1])

    return folder


# The package code each rule runs, relative to src/avemo (dvc.yaml lists the same paths as its
# stages' deps; tests/workflow/test_dvc.py keeps the two in step). Shared plumbing (cli, params,
# config, atomic, errors) is left out, as in dvc.yaml, so wiring in a stage reruns nothing else.
RULE_CODE: dict[str, tuple[str, ...]] = {
    "synthetic_corpus": ("synthetic.py", "synthetic_render.py", "labels.py"),
    "download_meld": ("download.py",),
    "manifest": ("manifest.py", "meld.py", "media.py", "labels.py"),
    "frames": ("video",),
    "audio": ("audio",),
    "qc": ("qc.py",),
    "train": ("training", "models"),
    "baseline": ("evaluation",),
    "evaluate": ("evaluation",),
    "fusion": ("fusion", "training", "models"),
    "late_fusion": ("fusion",),
    "evaluate_ablation": ("evaluation",),
    "compare": ("evaluation", "report/spec.py"),
    "report": ("report",),
}
PACKAGE = Path(__file__).resolve().parent


@cache
def code_hash(rule: str, package: Path = PACKAGE) -> str:
    """A digest of the contents of the code `rule` runs (RULE_CODE), for its params.

    Snakemake's "code" rerun-trigger sees only a rule's shell string, never the package it
    calls; as a param this digest makes an edit to, say, the training engine rerun exactly the
    training jobs, decided by content (a fresh clone or `dvc pull` hashes the same)."""
    h = hashlib.sha256()
    for rel in RULE_CODE[rule]:
        top = package / rel
        if not top.exists():
            raise FileNotFoundError(f"RULE_CODE[{rule!r}] names {top}, which does not exist")
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(package).as_posix().encode() + b"\0")
                h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def results(cfg: dict[str, Any]) -> Path:
    return Path(cfg["results_dir"])


def corpus_root(cfg: dict[str, Any]) -> Path:
    """Where the raw corpus (label CSVs + split folders) lives."""
    if cfg["dataset"] == "synthetic":
        return results(cfg) / "data" / "synthetic"
    return Path(cfg["meld"]["root"])


def synthetic(cfg: dict[str, Any]) -> dict[str, Any]:
    s = cfg["synthetic"]
    sizes = s["presets"][s["preset"]]
    return {
        "n_train": sizes["train"],
        "n_dev": sizes["dev"],
        "n_test": sizes["test"],
        "max_duration_s": sizes.get("max_duration_s"),
        "seed": s["seed"],
        "width": s["width"],
        "height": s["height"],
        "fps": s["fps"],
        "audio_rate": s["audio_rate"],
        "audio_channels": s["audio_channels"],
        "inject_defects": s["inject_defects"],
    }


def download(cfg: dict[str, Any]) -> dict[str, Any]:
    m = cfg["meld"]
    return {
        "url": m["url"],
        "archive_path": m["archive"],
        "root": m["root"],
        "checksum": m["checksum"],
        "retries": m["retries"],
        "download": m["download"],
    }


def manifest(cfg: dict[str, Any]) -> dict[str, Any]:
    return dict(cfg["manifest"])


def frames(cfg: dict[str, Any], frame_set: str) -> dict[str, Any]:
    f = cfg["frames"]
    return {"size": f["size"], "face_crop": f["face_crop"], "shard_clips": f["shard_clips"],
            **f["sets"][frame_set]}


def train_models(cfg: dict[str, Any]) -> list[str]:
    return list(cfg["train"]["models"])


def train(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """Everything that changes one model's training (its checkpoint's config hash)."""
    t = cfg["train"]
    m = t["models"][model]
    return {
        "engine": {**t["engine"], **m.get("engine", {})},
        "model_params": m.get("params", {}),
        "features": m.get("features", "utterance"),
        "frame_set": m.get("frame_set", "study"),
        "max_len": m.get("max_len"),
    }


def audio(cfg: dict[str, Any]) -> dict[str, Any]:
    a = cfg["audio"]
    return {
        "sample_rate": a["sample_rate"],
        "n_mels": a["n_mels"],
        "window_s": a["window_s"],
        "hop_s": a["hop_s"],
        "egemaps": a["egemaps"],
        "ssl": "on" if a["ssl"]["enabled"] else "off",
        "ssl_model": a["ssl"]["model"],
        "ssl_on_missing": a["ssl"]["on_missing"],
    }


def dataset_description(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the report says, at the top, about where its numbers come from."""
    if cfg["dataset"] == "synthetic":
        s = cfg["synthetic"]
        return {"dataset": "synthetic", "preset": s["preset"], "seed": s["seed"]}
    return {"dataset": "meld", "root": cfg["meld"]["root"]}


BASELINES = ("majority", "prior")


def model_inputs(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """Which stage outputs a per-stream model reads: its frame set (frame models; fusion also
    needs the other sets' per-frame embeddings) or the audio features (audio models)."""
    m = cfg["train"]["models"][model]
    if "features" in m:
        return {"frame_set": None, "audio": True, "extra_frame_sets": []}
    own = m.get("frame_set", "study")
    return {"frame_set": own, "audio": False,
            "extra_frame_sets": [s for s in cfg["frames"]["sets"] if s != own]}


def evaluation(cfg: dict[str, Any]) -> dict[str, Any]:
    # evaluation.compare feeds the compare stage only (avemo.report.spec.compare_params).
    return {k: v for k, v in cfg["evaluation"].items() if k != "compare"}


SINGLE_TASK = "@single_task"
ABLATIONS = ("no_audio", "no_video")


def fusion_models(cfg: dict[str, Any]) -> list[str]:
    """Configured fusion models, plus the single-task variant of ``fusion.single_task``."""
    names = list(cfg["fusion"]["models"])
    if cfg["fusion"].get("single_task"):
        names.append(cfg["fusion"]["single_task"] + SINGLE_TASK)
    return names


def early_fusion(cfg: dict[str, Any]) -> list[str]:
    return [m for m in cfg["fusion"]["models"] if not m.startswith("late")]


def fusion(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """Everything that changes one early-fusion model's training."""
    base = model.removesuffix(SINGLE_TASK)
    spec = cfg["fusion"]["models"][base]
    engine = {**cfg["train"]["engine"], **cfg["fusion"]["engine"], **spec.get("engine", {})}
    if model.endswith(SINGLE_TASK):
        engine["w_sentiment"] = 0.0
    return {"engine": engine, "model_params": spec.get("params", {}),
            "window_pool": cfg["fusion"]["window_pool"]}


def model_dir(cfg: dict[str, Any], model: str) -> str:
    """Folder (under results) of a model's runs: models/ for streams and baselines, fusion/."""
    return "fusion" if model in fusion_models(cfg) else "models"


def embedding_file(cfg: dict[str, Any], model: str, split: str, frame_set: str) -> str:
    """Name of a frame model's exported embeddings of ``split`` on ``frame_set``."""
    own = cfg["train"]["models"][model].get("frame_set", "study")
    return f"embeddings_{split}.npz" if frame_set == own else f"embeddings_{split}@{frame_set}.npz"


def fusion_inputs(cfg: dict[str, Any], model: str, seed: int) -> dict[str, dict[str, str]]:
    """Files (per split) an early-fusion model reads: labels, the video model's sparse (study)
    and dense embeddings of the same seed, audio features and the frame-aligned windows."""
    r, video = results(cfg), cfg["fusion"]["video_model"]
    vdir = r / "models" / video / f"seed{seed}"
    dense = cfg["audio"]["aligned_frame_set"]
    return {
        "manifests": {s: str(r / "manifest" / f"{s}.parquet") for s in SPLITS},
        "video_utt": {s: str(vdir / embedding_file(cfg, video, s, "study")) for s in SPLITS},
        "video_dense": {s: str(vdir / embedding_file(cfg, video, s, dense)) for s in SPLITS},
        "audio_dirs": {s: str(r / "audio" / s) for s in SPLITS},
        "aligned_dirs": {s: str(r / "audio" / s) for s in SPLITS},
    }


def fusion_deps(cfg: dict[str, Any], model: str, seed: int) -> list[str]:
    """What an early-fusion job waits for: the embeddings are not declared outputs of the video
    model's job (their names depend on the frame sets), its summary.json, written last, is."""
    files = fusion_inputs(cfg, model, seed)
    video = cfg["fusion"]["video_model"]
    summary = results(cfg) / "models" / video / f"seed{seed}" / "summary.json"
    return [*files["manifests"].values(), *files["audio_dirs"].values(), str(summary)]


def late_inputs(cfg: dict[str, Any], model: str, seed: int) -> dict[str, dict[str, str]]:
    spec, r = cfg["fusion"]["models"][model], results(cfg)
    return {
        stream: {s: str(r / "models" / spec[stream] / f"seed{seed}" / f"predictions_{s}.parquet")
                 for s in ("dev", "test")}
        for stream in ("visual", "audio")
    }


# Snakemake input functions (here rather than in rule files: rule files hold rules only).


def flat(files: dict[str, dict[str, str]]) -> list[str]:
    return [path for per_split in files.values() for path in per_split.values()]


def train_inputs(cfg: dict[str, Any], model: str) -> dict[str, list[str]]:
    r, spec = results(cfg), model_inputs(cfg, model)
    sets = [spec["frame_set"], *spec["extra_frame_sets"]] if spec["frame_set"] else []
    return {
        "manifests": [str(r / "manifest" / f"{s}.parquet") for s in SPLITS],
        "frames": [str(r / "frames" / f / s) for f in sets for s in SPLITS],
        "audio": [str(r / "audio" / s) for s in SPLITS] if spec["audio"] else [],
    }


def evaluate_inputs(cfg: dict[str, Any], model: str) -> list[str]:
    seeds = [0] if model in BASELINES else cfg["train"]["seeds"]
    where = results(cfg) / model_dir(cfg, model) / model
    return [str(where / f"seed{seed}" / f"predictions_{split}.parquet")
            for seed in seeds for split in ("dev", "test")]
