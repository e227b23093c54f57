"""Where the numbers come from: data, config, code version, packages, hardware, stage times."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = (
    "avemo",
    "torch",
    "torchvision",
    "torchaudio",
    "av",
    "opencv-python-headless",
    "numpy",
    "pandas",
    "scikit-learn",
    "snakemake",
    "dvc",
    "opensmile",
)


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def package_versions() -> pd.DataFrame:
    rows = []
    for name in PACKAGES:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def hardware() -> str:
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:
        gpu = "unknown (torch not importable)"
    return f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, GPU: {gpu}"


def read_summaries(summary_files: Mapping[str, Mapping[Any, Any]] | None) -> list[dict[str, Any]]:
    """Every training ``summary.json`` given to the report (``{model: {seed: path}}``)."""
    out = []
    for model, seeds in (summary_files or {}).items():
        for path in seeds.values():
            if Path(path).is_file():
                out.append({"model": model, **json.loads(Path(path).read_text(encoding="utf-8"))})
    return out


def _device_label(s: Mapping[str, Any]) -> str:
    name = s.get("device_name") or str(s.get("device", "unknown device"))
    if str(s.get("device", "")).startswith("cuda"):
        amp = s.get("amp_dtype") or "fp32"
        cudnn = s.get("cudnn_version")
        return f"{name} (CUDA {s.get('cuda_version') or '?'}, cuDNN {cudnn or '?'}, {amp})"
    return f"{name} (CPU, fp32)"


def training_hardware(summaries: Iterable[Mapping[str, Any]]) -> str:
    """Where the models were trained, from their summaries: each device (with its CUDA and
    cuDNN versions and AMP dtype) and how many training runs used it. The report job itself
    may run on another node, so its own hardware says nothing about training."""
    runs = Counter(_device_label(s) for s in summaries)
    if not runs:
        return "no training summaries given"
    return "; ".join(f"{label}: {n} run{'s' if n != 1 else ''}" for label, n in runs.items())


def nondeterminism_notes(summaries: Iterable[Mapping[str, Any]]) -> list[str]:
    """One sentence per model trained with an op that has no deterministic kernel on its
    device (``nondeterministic_ops`` in its summaries): its seeds may not repeat bit for bit."""
    ops: dict[str, set[str]] = {}
    for s in summaries:
        if s.get("nondeterministic_ops"):
            ops.setdefault(str(s.get("model")), set()).add(str(s["nondeterministic_ops"]))
    return [f"`{m}` was trained with {', '.join(sorted(o))}, which has no deterministic CUDA "
            "kernel: rerunning a seed of it may not give bit-identical numbers."
            for m, o in sorted(ops.items())]


def stage_times(bench_dir: Path) -> pd.DataFrame:
    """Wall time per job from Snakemake's `benchmark:` files (one TSV per job)."""
    rows = []
    for tsv in sorted(Path(bench_dir).glob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        if "s" in df.columns and len(df):
            rows.append(
                {
                    "job": tsv.stem,
                    "wall_s": round(float(df["s"].iloc[-1]), 2),
                    "max_rss_mb": round(float(df.get("max_rss", [float("nan")])[0]), 1),
                }
            )
    return pd.DataFrame(rows, columns=["job", "wall_s", "max_rss_mb"])


def stage_totals(times: pd.DataFrame) -> pd.DataFrame:
    """Wall time per stage: job names are ``<stage>_<wildcards>`` (e.g. ``train_cnn5_seed0``)."""
    if times.empty:
        return pd.DataFrame(columns=["stage", "jobs", "wall_s"])
    stage = times["job"].str.split("_", n=1).str[0]
    out = (
        times.assign(stage=stage)
        .groupby("stage", sort=False)
        .agg(jobs=("job", "count"), wall_s=("wall_s", "sum"))
    )
    return out.reset_index().sort_values("wall_s", ascending=False, ignore_index=True)
