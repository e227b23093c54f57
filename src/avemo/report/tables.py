"""Report tables, each a DataFrame computed from one stage's output files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..labels import EMOTIONS, SENTIMENTS, SPLITS


def class_counts(manifests: dict[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Per-split counts and shares of each label (the imbalance), in label order."""
    labels = EMOTIONS if column == "emotion" else SENTIMENTS
    rows = {}
    for split in SPLITS:
        counts = manifests[split][column].value_counts().reindex(labels, fill_value=0)
        rows[split] = counts
    table = pd.DataFrame(rows).astype(int)
    table.index.name = column
    total = table.sum(axis=0)
    for split in SPLITS:
        table[f"{split}_%"] = (100.0 * table[split] / max(int(total[split]), 1)).round(1)
    return table.reset_index()


def durations(manifests: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Clip duration statistics per split (container durations, seconds)."""
    rows = []
    for split in SPLITS:
        d = manifests[split]["duration_s"].dropna()
        rows.append({
            "split": split,
            "utterances": len(manifests[split]),
            "clips_readable": int(d.size),
            "min_s": round(float(d.min()), 2) if d.size else float("nan"),
            "median_s": round(float(d.median()), 2) if d.size else float("nan"),
            "mean_s": round(float(d.mean()), 2) if d.size else float("nan"),
            "max_s": round(float(d.max()), 2) if d.size else float("nan"),
            "total_h": round(float(d.sum()) / 3600.0, 3),
        })
    return pd.DataFrame(rows)


def qc_summary(qc_files: list[Path]) -> pd.DataFrame:
    """Problems found by the data stages, counted per split, stage and reason."""
    frames = [pd.read_csv(p, keep_default_na=False) for p in qc_files if Path(p).exists()]
    qc = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["split", "clip_name", "stage", "reason", "detail"]
    )
    if qc.empty:
        return pd.DataFrame(columns=["split", "stage", "reason", "clips", "examples"])
    grouped = qc.groupby(["split", "stage", "reason"], sort=True)
    return grouped["clip_name"].agg(
        clips="count", examples=lambda s: ", ".join(sorted(map(str, s))[:3])
    ).reset_index()
